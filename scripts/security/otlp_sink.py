#!/usr/bin/env python3
"""An OTLP/HTTP receiver for the security gate: appends every exported
request body (protobuf, where strings stay readable bytes) to a file, so the
gate can scan each span for canaries. Prints its port once listening.

Usage: otlp_sink.py OUT_FILE
"""

import http.server
import sys
import threading


class Sink(http.server.BaseHTTPRequestHandler):
    lock = threading.Lock()
    out = ""

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        with Sink.lock, open(Sink.out, "ab") as out:
            out.write(body)
            out.write(b"\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    Sink.out = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
