"""Running the control room: build its parts, read the preferences, serve until SIGTERM.

uvicorn handles SIGTERM and SIGINT: it stops accepting connections, closes the WebSockets
(code 1012, "service restart"), lets requests in flight finish for ``drain_s`` seconds, then
the app's shutdown stops the topic follower, the audio taps and any replay job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

__all__ = ["ControlRoomConfig", "run_controlroom"]

log = logging.getLogger("crowdsound.controlroom")


@dataclass(frozen=True)
class ControlRoomConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    lookback_s: float = 1800.0      # how far back the match list and plots start when the room starts
    heartbeat_s: float = 5.0        # a WebSocket hears at least this often
    client_queue: int = 2048        # messages waiting per WebSocket client before it is dropped as too slow
    send_timeout_s: float = 10.0    # a client that takes no message for this long is dropped
    drain_s: float = 5.0            # SIGTERM: seconds for requests in flight
    highlights_dir: Path | None = None  # default: <state dir>/controlroom/highlights


def build_room(settings: Settings, config: ControlRoomConfig):  # noqa: ANN201 - ControlRoom, imported late
    """The control room's parts; reads the preferences to their end (one line when a topic is missing)."""
    from consumers.controlroom.app import ControlRoom
    from consumers.controlroom.follower import TopicFollower
    from consumers.controlroom.hub import Hub
    from consumers.controlroom.jobs import HighlightJobs
    from consumers.controlroom.live import LiveModel

    model = LiveModel(recent_s=max(config.lookback_s, 600.0))
    hub = Hub(queue_size=config.client_queue, send_timeout_s=config.send_timeout_s, heartbeat_s=config.heartbeat_s)
    follower = TopicFollower(settings, model, lambda match_id, messages: hub.publish_threadsafe("match", match_id,
                                                                                                messages),
                             lookback_s=config.lookback_s)
    follower.start_reading()
    jobs = HighlightJobs(config.highlights_dir or settings.state_dir / "controlroom" / "highlights")
    return ControlRoom(settings=settings, model=model, hub=hub, follower=follower, jobs=jobs, audio_taps={})


def run_controlroom(settings: Settings, config: ControlRoomConfig) -> None:
    """Serve the control room until SIGTERM/SIGINT."""
    import uvicorn

    from consumers.controlroom.app import create_app

    room = build_room(settings, config)
    if not settings.api_tokens:
        log.warning("no API tokens (CROWDSOUND_API_TOKENS): every write will be refused")
    url = f"http://{config.host}:{config.port}/"
    app = create_app(room, on_started=lambda: log.info("control room at %s (API docs: %sdocs)", url, url))
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=int(config.drain_s), ws_ping_interval=20, ws_ping_timeout=20, ws="websockets-sansio",
    ))
    server.run()
