"""Prometheus metrics and a health endpoint for every long-running process.

One small HTTP server per process serves ``/metrics`` (prometheus-client's registry) and
``/healthz`` (200 while the process considers itself healthy, 503 otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

__all__ = ["serve_metrics"]


def serve_metrics(port: int, *, healthy: Callable[[], bool] = lambda: True,
                  host: str = "0.0.0.0") -> ThreadingHTTPServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` in a daemon thread (0 = off).

    Returns the server (``server.server_address[1]`` is the bound port) or None when off.
    """
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/metrics"):
                body, status, kind = generate_latest(REGISTRY), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                ok = healthy()
                body, status, kind = (b"ok\n" if ok else b"unhealthy\n"), (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
