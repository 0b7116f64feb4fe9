"""Whether a signup's answer time tells the address's state. Interleaves
signups of four kinds of address over one keep-alive connection and prints
the median answer time of each, in microseconds:

  new        never seen
  pending    signed up once before, not confirmed
  confirmed  confirmed readers (seeded by bench/seed.sh as readerN@bench.example)
  blocked    a domain on the blocklist

usage: python3 bench/signup_timing.py PORT SECRET_KEY ROUNDS
prints: new=US pending=US confirmed=US blocked=US
"""

import http.client
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from form_tokens import tokens  # noqa: E402

port, key, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
run = f"{int(time.time())}{random.randrange(10**6)}"
conn = http.client.HTTPConnection("127.0.0.1", port)
spare = iter(tokens(key, 6 * rounds))


def signup(email: str) -> float:
    body = json.dumps({"email": email, "lists": ["orthopedic"], "form_token": next(spare)})
    started = time.perf_counter()
    conn.request("POST", "/subscriptions", body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    took = time.perf_counter() - started
    if answer.status != 202:
        sys.exit(f"signup of a {email.split('@')[0]} address answered {answer.status}")
    return took


addresses = {
    "new": [f"new{run}-{i}@bench.example" for i in range(rounds)],
    "pending": [f"pending{run}-{i}@bench.example" for i in range(rounds)],
    "confirmed": [f"reader{i + 1}@bench.example" for i in range(rounds)],
    "blocked": [f"x{run}-{i}@mailinator.com" for i in range(rounds)],
}
for email in addresses["pending"]:
    signup(email)
for _ in range(20):  # warm the connection and the server
    signup(f"warm{run}-{random.randrange(10**9)}@bench.example")

times = {kind: [] for kind in addresses}
for i in range(rounds):
    kinds = list(addresses)
    random.shuffle(kinds)
    for kind in kinds:
        times[kind].append(signup(addresses[kind][i]))
print(" ".join(f"{kind}={statistics.median(t) * 1e6:.0f}" for kind, t in times.items()))
