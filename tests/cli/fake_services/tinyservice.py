"""A stand-in service for the runner's tests, standard library only.

Serves /healthz, /readyz and /env (its AGORA_* environment as JSON) on AGORA_HTTP_PORT, holds
AGORA_GRPC_PORT open, and exits 0 on SIGTERM. Like the chassis, it binds both ports with
SO_REUSEPORT, so a rolling restart can start its successor beside it. `TINY_BROKEN=<service>`
makes that service exit at once with status 3, to test what the runner does with a service that
never comes up. With `TINY_EVENTS=<file>` it appends `<unix time> <pid> ready|stopping` lines.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the chassis' servers do

    def do_GET(self):
        if self.path in ("/healthz", "/readyz"):
            body = b"ok"
        elif self.path == "/env":
            body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("AGORA_")}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class SharedPortServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def record(event: str) -> None:
    if os.environ.get("TINY_EVENTS"):
        with open(os.environ["TINY_EVENTS"], "a") as events:
            events.write(f"{time.time():.6f} {os.getpid()} {event}\n")


def main(name: str) -> None:
    if os.environ.get("TINY_BROKEN") == name:
        print(f"{name}: broken on purpose", flush=True)
        sys.exit(3)
    host = os.environ["AGORA_HOST"]
    grpc_listener = None
    if os.environ.get("AGORA_GRPC_PORT"):
        grpc_listener = socket.create_server((host, int(os.environ["AGORA_GRPC_PORT"])), reuse_port=True)
    server = SharedPortServer((host, int(os.environ["AGORA_HTTP_PORT"])), Handler)

    def stop(*_):
        record("stopping")
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"{name} serving on {server.server_address}", flush=True)
    record("ready")
    server.serve_forever()
    server.server_close()
    if grpc_listener:
        grpc_listener.close()
