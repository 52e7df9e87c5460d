"""The control room's Prometheus series (served on its own port's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CUES", "HIGHLIGHT_JOBS", "MATCHES", "REQUESTS", "REQUEST_SECONDS", "WEBSOCKET_CLIENTS",
           "WEBSOCKET_DROPPED", "WEBSOCKET_MESSAGES"]

REQUESTS = Counter("crowdsound_controlroom_requests_total", "HTTP requests answered, by route and status",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("crowdsound_controlroom_request_seconds", "time to answer an HTTP request",
                            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
WEBSOCKET_CLIENTS = Gauge("crowdsound_controlroom_websocket_clients",
                          "WebSocket clients connected, by stream (match: emotions/music/cues, audio: PCM)",
                          ["stream"])
WEBSOCKET_MESSAGES = Counter("crowdsound_controlroom_websocket_messages_total",
                             "messages sent to WebSocket clients, by stream", ["stream"])
# reason: queue_full (it read too slowly), send_timeout (it stopped reading)
WEBSOCKET_DROPPED = Counter("crowdsound_controlroom_websocket_dropped_total",
                            "WebSocket clients dropped by the server, by stream and reason", ["stream", "reason"])
CUES = Counter("crowdsound_controlroom_cues_total", "operator cues written to music.cues.v1, by type", ["type"])
MATCHES = Gauge("crowdsound_controlroom_matches", "matches heard of recently (the match list)")
HIGHLIGHT_JOBS = Counter("crowdsound_controlroom_highlight_jobs_total", "highlight replay jobs finished, by outcome",
                         ["outcome"])
