"""An independent DKIM verifier for tests: Debian's python3-dkim (dkimpy).
Verifies every DKIM-Signature of a message against the given key records
instead of DNS.

usage: /usr/bin/python3 dkim_verify.py MESSAGE_FILE RECORDS_JSON
RECORDS_JSON maps names ("sel._domainkey.example.org") to TXT values.
prints "verified N" (N signatures, all good), else exits 1 saying which failed.
"""

import json
import sys

import dkim

message = open(sys.argv[1], "rb").read()
records = {k.rstrip(".").lower(): v for k, v in json.load(open(sys.argv[2])).items()}


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.rstrip(".").lower(), "").encode() or None


count = message.count(b"\nDKIM-Signature:") + message.startswith(b"DKIM-Signature:")
if count == 0:
    sys.exit("no DKIM-Signature header")
for idx in range(count):
    verifier = dkim.DKIM(message)
    if not verifier.verify(idx=idx, dnsfunc=dnsfunc):
        sys.exit(f"signature {idx} does not verify")
print(f"verified {count}")
