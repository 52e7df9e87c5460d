"""Topic housekeeping shared by the benchmark scripts."""

from __future__ import annotations

from infra.clients import make_admin
from infra.settings import Settings

__all__ = ["drop_topics"]


def drop_topics(settings: Settings) -> None:
    """Delete the topics of a finished run (backlogs can be hundreds of MB); best effort."""
    admin = make_admin(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001, S110 - best effort
                pass
