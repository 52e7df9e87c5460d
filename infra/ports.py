"""A local TCP port to listen on (for /metrics pages, the demo's control room, test processes)."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(wanted: int = 0) -> int:
    """``wanted`` when nothing listens there now, else (and for 0) a port nothing listens on now."""
    with socket.socket() as probe:
        if wanted:
            try:
                probe.bind(("127.0.0.1", wanted))
                return wanted
            except OSError:
                pass
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
