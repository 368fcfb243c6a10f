#!/usr/bin/env python3
"""A remote OPA that never answers (Suite 7's `fault_opa_unresponsive`):
listens on 127.0.0.1:PORT, accepts every connection, reads and discards
what the gateway sends and never writes a byte. A connection stays open
until the gateway gives up on it. Runs until killed.

  blackhole.py PORT
"""

import socket
import sys
import threading


def hold(connection: socket.socket) -> None:
    with connection:
        while connection.recv(4096):
            pass


def main() -> int:
    port = int(sys.argv[1])
    server = socket.create_server(("127.0.0.1", port), backlog=256)
    while True:
        connection, _ = server.accept()
        threading.Thread(target=hold, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
