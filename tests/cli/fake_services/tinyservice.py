"""A stand-in service for the runner's tests, standard library only.

Serves /healthz, /readyz and /env (its AGORA_* environment as JSON) on AGORA_HTTP_PORT, holds
AGORA_GRPC_PORT open, and exits 0 on SIGTERM. `TINY_BROKEN=<service>` makes that service exit
at once with status 3, to test what the runner does with a service that never comes up.
"""

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
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


def main(name: str) -> None:
    if os.environ.get("TINY_BROKEN") == name:
        print(f"{name}: broken on purpose", flush=True)
        sys.exit(3)
    host = os.environ["AGORA_HOST"]
    grpc_listener = None
    if os.environ.get("AGORA_GRPC_PORT"):
        grpc_listener = socket.create_server((host, int(os.environ["AGORA_GRPC_PORT"])))
    server = ThreadingHTTPServer((host, int(os.environ["AGORA_HTTP_PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{name} serving on {server.server_address}", flush=True)
    server.serve_forever()
    server.server_close()
    if grpc_listener:
        grpc_listener.close()
