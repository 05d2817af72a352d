#!/usr/bin/env python3
"""faultline's client for kvstore.py, speaking faultline's JSON Lines client protocol.

faultline starts this program once per worker, with the node it talks to, writes one operation
per line on standard input and reads one completion per line on standard output (see
docs/byo-store.md):

    in:  {"id": 7, "f": "cas", "key": 3, "value": [1, 2]}
    out: {"id": 7, "type": "fail", "error": "compare-failed"}

The rule every client must keep: "ok" only when the operation certainly happened, "fail" only
when it certainly did not, "info" when it cannot tell (a timeout, a connection lost after the
request was sent). A read changes nothing, so a read that went wrong is a "fail".
"""

import argparse
import http.client
import json
import sys


def perform(address, timeout, op):
    f, key, value = op["f"], op.get("key"), op.get("value")
    key_text = key if isinstance(key, str) else json.dumps(key)
    if f == "read":
        method, path, body = "GET", "/kv/%s" % key_text, None
    elif f == "write":
        method, path, body = "PUT", "/kv/%s" % key_text, {"value": value}
    elif f == "cas":
        method, path, body = "POST", "/kv/%s/cas" % key_text, {"expected": value[0], "new": value[1]}
    else:
        return {"type": "fail", "error": "unsupported operation %s" % f}
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError as e:
            # Nothing was sent: the store never saw this request.
            return {"type": "fail", "error": "connect: %s" % e}
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            reply = json.loads(response.read() or b"null")
        except (OSError, ValueError, http.client.HTTPException) as e:
            unknown = "fail" if f == "read" else "info"
            return {"type": unknown, "error": "no answer: %s" % e}
    finally:
        connection.close()
    if response.status == 200:
        return {"type": "ok", "value": reply.get("value") if f == "read" else value}
    error = reply.get("error") if isinstance(reply, dict) else None
    error = error or "http-%d" % response.status
    if response.status == 409:
        return {"type": "fail", "error": "compare-failed"}
    if f == "read" or (isinstance(reply, dict) and reply.get("definite") is True):
        return {"type": "fail", "error": error}
    return {"type": "info", "error": error}


def main():
    parser = argparse.ArgumentParser(description="JSON Lines client for kvstore.py")
    parser.add_argument("--address", required=True, help="HOST:PORT of the node's client port")
    parser.add_argument("--timeout", type=float, default=2.5, help="seconds per request")
    args = parser.parse_args()
    for line in sys.stdin:
        op = json.loads(line)
        completion = perform(args.address, args.timeout, op)
        completion["id"] = op["id"]
        sys.stdout.write(json.dumps(completion) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
