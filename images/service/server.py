"""A tiny stdlib-only HTTP service reporting the platform it runs on.

GET  /health    -> 200 {"status": "ok"}
GET  /platform  -> machine, byte order, word size and the platform the image was built for
POST /checksum  -> sha256 and length of the request body (the same on every platform)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
MAX_BODY = 16 * 1024 * 1024


def platform_info() -> dict[str, object]:
    return {
        "machine": os.uname().machine,
        "byte_order": sys.byteorder,
        "word_bits": struct.calcsize("P") * 8,
        "built_for": os.environ.get("BUILT_FOR", ""),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "multiarch-example-service/1.0"
    protocol_version = "HTTP/1.1"

    def _send_json(self, status: HTTPStatus, payload: dict[str, object]) -> None:
        body = json.dumps(payload, sort_keys=True).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/platform":
            self._send_json(HTTPStatus.OK, platform_info())
        elif self.path == "/checksum":
            self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/checksum":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
            return
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
            return
        if length > MAX_BODY:
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        body = self.rfile.read(length)
        self._send_json(
            HTTPStatus.OK, {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
        )

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")
        sys.stderr.flush()


def main() -> int:
    # PID 1 in a container gets no default SIGTERM action: exit promptly on `docker stop`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 (a container service)
    server.daemon_threads = True
    print(f"listening on {PORT}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
