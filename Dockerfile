# Tidings in a container: a release build, then a slim runtime image.
# Build: docker build -t tidings .   Run: docker run -p 8000:8000 -v tidings:/var/lib/tidings tidings

FROM rust:1-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer of their own: rebuilt only when
# Cargo.toml or Cargo.lock change, not when src/ does. (libpq, OpenSSL and
# SQLite are built from source by their crates: no -dev packages needed.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
COPY email_templates email_templates
COPY config config
# Newer than the placeholder build, so Cargo rebuilds Tidings itself.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/tidings --create-home --uid 10001 tidings
COPY --from=build /src/target/release/tidings /usr/local/bin/tidings
COPY config /etc/tidings
USER tidings
WORKDIR /var/lib/tidings
# Configuration comes from the environment (TIDINGS_*; see README.md); a
# file can be mounted and named with TIDINGS_CONFIG. The volume holds the
# SQLite database and the `file` transport's mail drop.
ENV TIDINGS_LISTEN=0.0.0.0:8000 \
    TIDINGS_DATABASE_URL=sqlite:///var/lib/tidings/tidings.db \
    TIDINGS_MAIL_DIR=/var/lib/tidings/outbox
EXPOSE 8000
VOLUME ["/var/lib/tidings"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["tidings", "health"]
ENTRYPOINT ["tidings"]
CMD ["serve"]
