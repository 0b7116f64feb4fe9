"""Form tokens as Tidings signs them (see src/domain/token.rs and
src/http/abuse.rs), for benchmark clients that need one per signup: each
token serves one signup. Needs the service's TIDINGS_SECRET_KEY.

usage: python3 bench/form_tokens.py SECRET_KEY COUNT > tokens.txt
"""

import base64
import hashlib
import hmac
import os
import sys
import time

LABEL = b"tidings/form-issued/v1"


def form_token(key: bytes, issued_ms: int) -> str:
    token_id = f"{issued_ms}-{os.urandom(8).hex()}"
    mac = hmac.new(key, LABEL + b"\0" + token_id.encode(), hashlib.sha256).digest()[:16]
    return token_id + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def tokens(key: str, count: int, age_ms: int = 5_000):
    """`count` distinct tokens, issued `age_ms` ago (old enough to pass the fill time)."""
    issued = int(time.time() * 1000) - age_ms
    return [form_token(key.encode(), issued) for _ in range(count)]


if __name__ == "__main__":
    sys.stdout.write("\n".join(tokens(sys.argv[1], int(sys.argv[2]))) + "\n")
