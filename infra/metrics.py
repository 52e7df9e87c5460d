"""Prometheus metrics and a health endpoint for every long-running process.

One small HTTP server per process serves ``/metrics`` (prometheus-client's registry) and
``/healthz`` (200 while the process considers itself healthy, 503 otherwise). It binds to
``--metrics-host`` (``CROWDSOUND_METRICS_HOST``, default 127.0.0.1: nothing outside the machine
sees it unless asked; the Helm chart and compose use 0.0.0.0 inside their pods and containers),
and a client that sends nothing is dropped after a few seconds instead of holding a thread.

Health means work gets done: :class:`Liveness` fails when a process has had work for
``CROWDSOUND_HEALTH_STALL_S`` seconds (default 60) without finishing any of it — the
composer's loop stuck in a batch, the worker's consumer no longer delivering records it knows
are there — so an orchestrator restarts it.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from infra.settings import Settings

__all__ = ["ChildMetrics", "Liveness", "serve_metrics", "serve_process_metrics"]

REQUEST_TIMEOUT_S = 5.0  # a scrape or probe that has not sent its request by then is dropped


class Liveness:
    """Whether a loop is alive: healthy unless it has had work for ``stall_s`` seconds without
    making progress. The stall clock starts when work appears, not when progress was last made,
    so a long idle spell is no stall."""

    def __init__(self, stall_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self._clock = clock
        self._since = clock()  # the last progress, or when work appeared after an idle spell
        self._busy = False
        self._lock = threading.Lock()

    def progressed(self) -> None:
        """Some work was finished (a batch applied, a loop turn completed)."""
        with self._lock:
            self._since = self._clock()

    def busy(self, has_work: bool) -> None:
        """Whether work is waiting now."""
        with self._lock:
            if has_work and not self._busy:
                self._since = self._clock()
            self._busy = has_work

    def stalled_for(self) -> float:
        """Seconds the waiting work has gone without progress (0 when idle)."""
        with self._lock:
            return self._clock() - self._since if self._busy else 0.0

    def healthy(self) -> bool:
        return self.stalled_for() < self.stall_s


def serve_process_metrics(args: argparse.Namespace, settings: Settings, *,
                          healthy: Callable[[], bool] = lambda: True,
                          registry: Any = REGISTRY) -> ThreadingHTTPServer | None:
    """:func:`serve_metrics` where ``--metrics-port``/``--metrics-host`` (or the settings) say."""
    port = args.metrics_port if getattr(args, "metrics_port", None) is not None else settings.metrics_port
    host = getattr(args, "metrics_host", None) or settings.metrics_host
    return serve_metrics(port, healthy=healthy, host=host, registry=registry)


class ChildMetrics:
    """The metrics of child processes (each serving /metrics on a local port) as one collector:
    every sample gets a ``process`` label naming its child, so a supervisor serves its
    children's metrics on one port. A child that does not answer is left out of that scrape."""

    def __init__(self, ports: dict[str, int], timeout_s: float = 2.0) -> None:
        self.ports = ports
        self.timeout_s = timeout_s

    def collect(self) -> Any:
        import urllib.request

        from prometheus_client.core import Metric
        from prometheus_client.parser import text_string_to_metric_families

        merged: dict[str, Metric] = {}
        for name, port in self.ports.items():
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",  # noqa: S310 - our own child
                                              timeout=self.timeout_s).read().decode()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                metric = merged.get(family.name)
                if metric is None:
                    metric = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    metric.add_sample(sample.name, {**sample.labels, "process": name}, sample.value, sample.timestamp)
        yield from merged.values()

    def healthy(self) -> bool:
        """Every child answers /healthz with 200."""
        import urllib.request

        for port in self.ports.values():
            try:  # a 503 raises HTTPError, an OSError like a refused connection
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",  # noqa: S310 - our own child
                                            timeout=self.timeout_s) as answer:
                    if answer.status != 200:
                        return False
            except OSError:
                return False
        return True


def serve_metrics(port: int, *, healthy: Callable[[], bool] = lambda: True,
                  host: str = "127.0.0.1", registry: Any = REGISTRY) -> ThreadingHTTPServer | None:
    """Serve ``/metrics`` (of ``registry``) and ``/healthz`` on ``host:port`` in a daemon thread
    (0 = off).

    Returns the server (``server.server_address[1]`` is the bound port) or None when off.
    """
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # socket timeout: a client that stalls is dropped

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/metrics"):
                body, status, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
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
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
