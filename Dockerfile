# Tidings in a container: a release build, then a slim runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY email_templates email_templates
COPY config config
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/tidings --create-home tidings
COPY --from=build /src/target/release/tidings /usr/local/bin/tidings
COPY config /etc/tidings
USER tidings
WORKDIR /var/lib/tidings
ENV TIDINGS_LISTEN=0.0.0.0:8000 \
    TIDINGS_DATABASE_URL=sqlite:///var/lib/tidings/tidings.db
EXPOSE 8000
VOLUME ["/var/lib/tidings"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["tidings"]
CMD ["serve"]
