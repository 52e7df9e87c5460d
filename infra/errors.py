"""The one exception type of the project.

Every check at a boundary (CLI arguments, settings, decoded bytes, files) raises
:class:`CrowdsoundError` with the offending value in the message, so the CLI can print
one line and exit non-zero instead of a traceback.
"""

from __future__ import annotations

__all__ = ["BrokerError", "CrowdsoundError", "SchemaError", "SettingsError", "TopicMissingError"]


class CrowdsoundError(Exception):
    """Base class of every error crowdsound raises on purpose."""


class SchemaError(CrowdsoundError):
    """Bytes that are not a crowdsound record, or a record that breaks its schema."""


class SettingsError(CrowdsoundError):
    """An environment variable or option with a value crowdsound cannot use."""


class BrokerError(CrowdsoundError):
    """The local broker cannot be assembled, started, reached or stopped."""


class TopicMissingError(CrowdsoundError):
    """A catalogue topic the cluster does not have (``crowdsound topics apply`` creates it)."""
