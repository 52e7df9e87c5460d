"""The Faust app: one agent joins crowd.audio.v1 and match.events.v1 into crowd.emotions.v1.

Run it with ``crowdsound worker`` or ``faust -A streams.app worker -l info``. Settings come
from the environment (see ``infra/settings.py``), read when this module is imported.

The agent is thin: it hands each record to :class:`streams.processor.RecordProcessor` with
the match's state from a changelog-backed table, sends the outputs through Faust's producer
(Faust flushes it before committing offsets) and waits for their acknowledgement before it
stores the new state, so a crash can only repeat an emission, never lose one.

Keys are raw bytes (``key_serializer="raw"``): a JSON-serialised key would hash to a
different partition than the producers' and break co-partitioning.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from infra.settings import Settings
from streams.processor import RecordProcessor

__all__ = ["app", "settings"]

log = logging.getLogger("crowdsound.worker")
settings = Settings.from_env()


def _broker_credentials(config: Settings) -> Any:
    if config.security_protocol.startswith("SASL"):
        import ssl

        context = ssl.create_default_context(cafile=config.ssl_ca_location) \
            if config.security_protocol == "SASL_SSL" else None
        return faust.SASLCredentials(
            username=config.sasl_username, password=config.sasl_password,
            mechanism=config.sasl_mechanism or "PLAIN", ssl_context=context,
        )
    if config.security_protocol == "SSL":
        import ssl

        return faust.SSLCredentials(ssl.create_default_context(cafile=config.ssl_ca_location))
    return None


app = faust.App(
    f"{settings.topic_prefix}crowdsound-streams",
    broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
    broker_credentials=_broker_credentials(settings),
    store=settings.streams_store,
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    topic_replication_factor=max(1, settings.replication_factor),
    topic_allow_declare=True,
    table_standby_replicas=0,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=200,
    broker_commit_interval=1.0,
    broker_session_timeout=10.0,
    broker_heartbeat_interval=3.0,
    stream_wait_empty=True,
    producer_compression_type="zstd",
    producer_max_request_size=8 * 1024 * 1024,
    processing_guarantee="at_least_once",
    web_enabled=False,
)

sources = app.topic(settings.topic("crowd.audio.v1"), settings.topic("match.events.v1"),
                    key_type=bytes, value_type=bytes)
match_state = app.Table(
    "match-join-state", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions,
    # Compact often: every audio frame rewrites its match's state, and recovery reads it all.
    extra_topic_configs={"segment.ms": "120000", "min.cleanable.dirty.ratio": "0.05",
                         "max.message.bytes": str(4 * 1024 * 1024)},
)
_outputs: dict[str, faust.types.TopicT] = {}
_processor: RecordProcessor | None = None


def processor() -> RecordProcessor:
    """The record processor, with the emotion model loaded once per worker."""
    global _processor
    if _processor is None:
        from streams.emotion import EmotionModel
        from streams.join import AcousticEmotion

        model = EmotionModel.load()

        def predict(features):
            return [AcousticEmotion(e.probabilities, e.arousal, e.valence) for e in model.predict(features)]

        _processor = RecordProcessor(settings, predict=predict, model_version=model.version)
    return _processor


def _topic(name: str) -> faust.types.TopicT:
    if name not in _outputs:
        _outputs[name] = app.topic(name, key_type=bytes, value_type=bytes)
    return _outputs[name]


@app.agent(sources)
async def join_crowd_and_match(stream: faust.StreamT) -> None:
    work = processor()
    async for event in stream.events():
        message = event.message
        key = message.key
        result = work.process(
            state=match_state.get(key) if key else None, topic=message.topic, partition=message.partition,
            offset=message.offset, key=key, value=message.value,
        )
        pending = [await _topic(out.topic).send(key=out.key, value=out.value, timestamp=(
            out.timestamp_ms / 1000 if out.timestamp_ms else None)) for out in result.outputs]
        for future in pending:
            await future  # acknowledged before the state moves on
        if result.state is not None and key:
            match_state[key] = result.state
