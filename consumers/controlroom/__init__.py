"""The control room: a web page and an HTTP API for the people running a match.

``crowdsound controlroom`` serves both from one ASGI app (FastAPI on uvicorn): the live crowd
and music of every match (read from the topics by assign-only consumers, no database),
preferences and operator cues (the same records the CLI writes), the live music in the
browser, and highlight reels built by replay jobs.
"""

from consumers.controlroom.server import ControlRoomConfig, run_controlroom

__all__ = ["ControlRoomConfig", "run_controlroom"]
