#!/usr/bin/env python3
"""A small replicated key-value store with a deliberate replication flaw.

faultline's bring-your-own-store example (docs/byo-store.md): one primary (the node with the
lowest id) and backups, speaking HTTP/1.1 and JSON, Python 3 standard library only.

    GET  /kv/<key>                          -> 200 {"value": v}   (null: never written)
    PUT  /kv/<key>      {"value": v}        -> 200 {"value": v}
    POST /kv/<key>/cas  {"expected": e, "new": n}
                                            -> 200, or 409 {"error": "compare-failed"}
    POST /replicate     [{"seq", "key", "value"}, ...]   (peer port only: primary -> backup)

Errors: 503 {"definite": true} = the request certainly did not take effect (the primary could
not be reached at all); 504 {"definite": false} = unknown (the primary may have applied it).

The primary applies every write under one lock and appends it to its log (`<data-dir>/log.jsonl`,
one `os.write` per record, so a SIGKILL never tears a record) before it answers, and replays the
log when it starts again. Backups forward writes and compare-and-sets to the primary.

THE FLAW (default, `--reads backup`): replication is asynchronous — the primary acknowledges a
write before any backup has it, and a sender thread per backup ships it later, in batches
gathered for 50 ms (retrying while the backup is unreachable) — while backups serve reads from
their own copy. A client reading from a
backup can therefore miss a write that was already acknowledged: a stale read, which is not
linearizable. A partition between the primary and a backup makes the backup stale for as long as
it lasts; even without faults the replication lag shows.

THE FIX (`--reads primary`): backups forward reads to the primary too, so every operation is
decided by the one primary, in one order, from a log that survives kills.
"""

import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time

# How long a backup waits for the primary when it forwards a request (seconds).
FORWARD_TIMEOUT_S = 1.0
# How long one replication batch may take before the sender retries it (seconds).
REPLICATE_TIMEOUT_S = 1.0
# Pause between retries of a batch the backup did not take (seconds).
RETRY_S = 0.1
# The most entries sent in one replication batch.
BATCH = 256
# How long a sender gathers writes before it ships them (seconds): batching, as asynchronous
# replication usually does, at the price of backups that lag this much behind.
REPLICATION_INTERVAL_S = 0.05


def log(message):
    sys.stderr.write("%s kvstore: %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


class Store:
    """The node's copy of the data: key -> (value, seq), persisted in an append-only log."""

    def __init__(self, data_dir):
        self.lock = threading.Lock()
        self.data = {}
        self.seq = 0
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, "log.jsonl")
        if os.path.exists(path):
            with open(path, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a torn last record (cannot happen with one write per record)
                    self.apply(entry)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def apply(self, entry):
        """Applies a replicated (or replayed) entry unless a newer one for its key is here."""
        key, seq = entry["key"], entry["seq"]
        current = self.data.get(key)
        if current is None or current[1] < seq:
            self.data[key] = (entry["value"], seq)
        self.seq = max(self.seq, seq)

    def persist(self, entry):
        os.write(self.fd, (json.dumps(entry) + "\n").encode())

    def read(self, key):
        with self.lock:
            current = self.data.get(key)
            return None if current is None else current[0]


class Node:
    def __init__(self, args):
        self.id = args.id
        self.reads = args.reads
        self.peers = {}
        for item in args.peers.split(","):
            peer_id, _, addr = item.partition("=")
            self.peers[int(peer_id)] = parse_addr(addr)
        if self.id not in self.peers:
            raise SystemExit("--peers must name this node's own id %d" % self.id)
        self.primary_id = min(self.peers)
        self.store = Store(args.data_dir)
        self.senders = {}
        if self.is_primary():
            for peer_id in self.peers:
                if peer_id != self.id:
                    sender = Sender(self.peers[peer_id], peer_id)
                    self.senders[peer_id] = sender
                    threading.Thread(target=sender.run, daemon=True).start()

    def is_primary(self):
        return self.id == self.primary_id

    # -- the primary decides ------------------------------------------------------------------

    def write(self, key, value):
        with self.store.lock:
            return self._write_locked(key, value)

    def _write_locked(self, key, value):
        self.store.seq += 1
        entry = {"seq": self.store.seq, "key": key, "value": value}
        self.store.persist(entry)
        self.store.data[key] = (value, entry["seq"])
        # Acknowledged once it is in the primary's log; the backups get it later.
        for sender in self.senders.values():
            sender.enqueue(entry)
        return 200, {"value": value}

    def cas(self, key, expected, new):
        with self.store.lock:
            current = self.store.data.get(key)
            current = None if current is None else current[0]
            if current != expected:
                return 409, {"error": "compare-failed", "definite": True}
            return self._write_locked(key, new)

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method, path, body):
        if path == "/replicate" and method == "POST":
            with self.store.lock:
                for entry in body:
                    self.store.persist(entry)
                    self.store.apply(entry)
            return 200, {"applied": len(body)}
        if path == "/status":
            return 200, {"id": self.id, "primary": self.primary_id, "seq": self.store.seq}
        if not path.startswith("/kv/"):
            return 404, {"error": "no such path", "definite": True}
        rest = path[len("/kv/"):]
        is_cas = rest.endswith("/cas")
        key = rest[: -len("/cas")] if is_cas else rest
        if method == "GET" and not is_cas:
            if self.is_primary() or self.reads == "backup":
                # The flaw, when this is a backup: its copy may be behind the primary's.
                return 200, {"value": self.store.read(key)}
            return self.forward(method, path, body)
        if not self.is_primary():
            return self.forward(method, path, body)
        if method == "PUT" and not is_cas:
            return self.write(key, body["value"])
        if method == "POST" and is_cas:
            return self.cas(key, body["expected"], body["new"])
        return 405, {"error": "method not allowed", "definite": True}

    def forward(self, method, path, body):
        """Sends a request on to the primary: 503 when it certainly never got there, 504 when
        it may have been applied."""
        host, port = self.peers[self.primary_id]
        connection = http.client.HTTPConnection(host, port, timeout=FORWARD_TIMEOUT_S)
        try:
            try:
                connection.connect()
            except OSError as e:
                return 503, {"error": "primary unreachable: %s" % e, "definite": True}
            try:
                data = None if body is None else json.dumps(body).encode()
                headers = {"Content-Type": "application/json"}
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                return response.status, json.loads(response.read() or b"null")
            except (OSError, ValueError, http.client.HTTPException) as e:
                return 504, {"error": "primary did not answer: %s" % e, "definite": False}
        finally:
            connection.close()


class Sender:
    """Ships the primary's writes to one backup, in order, retrying until the backup has them."""

    def __init__(self, addr, peer_id):
        self.addr = addr
        self.peer_id = peer_id
        self.queue = []
        self.ready = threading.Condition()
        self.failing = False

    def enqueue(self, entry):
        with self.ready:
            self.queue.append(entry)
            self.ready.notify()

    def run(self):
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
            time.sleep(REPLICATION_INTERVAL_S)
            with self.ready:
                batch = self.queue[:BATCH]
            if self.send(batch):
                with self.ready:
                    del self.queue[: len(batch)]
                if self.failing:
                    log("backup %d reachable again" % self.peer_id)
                    self.failing = False
            else:
                if not self.failing:
                    log("backup %d unreachable; %d writes queued" % (self.peer_id, len(self.queue)))
                    self.failing = True
                time.sleep(RETRY_S)

    def send(self, batch):
        host, port = self.addr
        connection = http.client.HTTPConnection(host, port, timeout=REPLICATE_TIMEOUT_S)
        try:
            connection.request("POST", "/replicate", body=json.dumps(batch).encode(),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


def handler_for(node):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The status line, headers and body leave in one write without waiting for an ACK
        # (with Nagle, a small second write waits out the peer's delayed ACK: ~40 ms).
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def do_request(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
                status, reply = node.handle(self.command, self.path, body)
            except (ValueError, KeyError, TypeError) as e:
                status, reply = 400, {"error": "bad request: %s" % e, "definite": True}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_request

        def log_message(self, format, *args):
            pass  # one line per request would drown the log

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", type=int, required=True, help="this node's id (1, 2, ...)")
    parser.add_argument("--listen", required=True, help="HOST:PORT for clients")
    parser.add_argument("--peer-listen", required=True, help="HOST:PORT for the other nodes")
    parser.add_argument("--peers", required=True,
                        help="every node as ID=HOST:PORT, comma-separated, this one included; "
                             "the lowest id is the primary")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reads", choices=["backup", "primary"], default="backup",
                        help="backup: backups serve reads from their asynchronous copy (the "
                             "flaw); primary: every read goes to the primary (the fix)")
    args = parser.parse_args()
    node = Node(args)
    servers = [Server(parse_addr(args.peer_listen), handler_for(node)),
               Server(parse_addr(args.listen), handler_for(node))]
    for server in servers[:-1]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log("node %d (%s, reads from %s) serving clients on %s, peers on %s; %d writes replayed" % (
        node.id, "primary" if node.is_primary() else "backup", args.reads, args.listen,
        args.peer_listen, node.store.seq))
    servers[-1].serve_forever()


if __name__ == "__main__":
    main()
