"""The Faust app: one agent joins crowd.audio.v1 and match.events.v1 into crowd.emotions.v1.

Run it with ``crowdsound worker`` or ``faust -A streams.app worker -l info``. Settings come
from the environment (see ``infra/settings.py``), read when this module is imported.

The agent is thin: it hands each record to :class:`streams.processor.RecordProcessor`, which
keeps each match's join state in memory (loaded from a changelog-backed table the first time),
and sends the outputs through Faust's producer. The state is written to the table as
checkpoints (every 20 records or 3 s of a match, whichever comes first), not after every frame, and a
source record is acked — may be committed — only once a checkpoint including it is in the
table and its outputs are acknowledged (:mod:`streams.checkpoints`). So a crash can only
repeat an emission, never lose one, and a restarted worker rebuilds exactly the same state.

Records are taken in small batches (up to 5 ms of them): a helper process analyses a
batch's audio frames on another core while the previous batch is applied
(:mod:`streams.offload`); that changes no result.

Keys are raw bytes (``key_serializer="raw"``): a JSON-serialised key would hash to a
different partition than the producers' and break co-partitioning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from infra.faust_transport import prompt_fetches
from infra.metrics import Liveness
from infra.settings import Settings
from streams.checkpoints import Checkpoints, exit_without_commit
from streams.processor import FORGOTTEN, Applied, RecordProcessor
from streams.stages import RECORD_WAIT, observe, watch_loop

__all__ = ["app", "configure", "liveness", "settings"]

log = logging.getLogger("crowdsound.worker")
settings = Settings.from_env()


def _broker_credentials(config: Settings) -> Any:
    """The settings' client security (converted once, in infra) as Faust's credentials object."""
    auth = config.aiokafka_config()
    context, mechanism = auth.get("ssl_context"), auth.get("sasl_mechanism")
    if mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=auth["sasl_oauth_token_provider"], ssl_context=context)
    if mechanism:
        return faust.SASLCredentials(username=auth["sasl_plain_username"], password=auth["sasl_plain_password"],
                                     mechanism=mechanism, ssl_context=context)
    return faust.SSLCredentials(context) if context else None


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
    # Commit on the interval only: a count-triggered commit runs inside Faust's fetch loop and
    # stalls it for a producer flush and a commit round trip.
    broker_commit_every=1_000_000,
    broker_commit_interval=1.0,
    broker_session_timeout=10.0,
    broker_heartbeat_interval=3.0,
    stream_wait_empty=True,
    producer_compression_type="zstd",
    producer_max_request_size=8 * 1024 * 1024,
    processing_guarantee="at_least_once",
    web_enabled=False,
)

prompt_fetches(app)  # fetches never held 1.5 s at the broker (infra/faust_transport.py)
sources = app.topic(settings.topic("crowd.audio.v1"), settings.topic("match.events.v1"),
                    key_type=bytes, value_type=bytes)
match_state = app.Table(
    "match-join-state", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions,
    # Compact often: each match's state is rewritten every few seconds, and recovery reads it all.
    # Small segments: only closed segments are compacted, in one go. At 100 matches (~1 MB/s of
    # changelog) a 120 s segment made a ~2 s burst of one core on the broker every 2 minutes,
    # and on a 2-core box every window's latency with it (a 0.8-1.5 s episode at 126-136 s of
    # each live benchmark run); 30 s segments make a quarter of that burst, four times as often,
    # and a random jitter of up to 20 s per segment (rolls after 10-30 s) keeps the partitions
    # from rolling, and being compacted, all at the same moment.
    extra_topic_configs={"segment.ms": "30000", "segment.jitter.ms": "20000", "min.cleanable.dirty.ratio": "0.05",
                         "max.message.bytes": str(4 * 1024 * 1024)},
)
_outputs: dict[str, faust.types.TopicT] = {}
_processor: RecordProcessor | None = None
# /healthz: unhealthy when records are known to wait (Kafka's end of a source partition is past
# what reached the agent, or a batch is in the worker) and no batch was applied for the stall limit.
liveness = Liveness(settings.health_stall_s)
_read_upto: dict[Any, int] = {}  # per source partition: the offset after the last record taken
_in_hand = [0]  # batches taken from the stream and not applied yet


# A finished match is deleted from the table once its partition has heard a record this much
# later (record times, bounded by the broker's clock): the table and its restore stay the size
# of the matches in play. `crowdsound worker --forget-after HOURS` sets it.
forget_after_ms = 6 * 3_600_000


def configure(*, replicas: int, min_insync: int, forget_after_h: float) -> None:
    """What `crowdsound worker` decides before Faust starts: how the topics Faust creates (the
    table's changelog, which holds every match's state and must survive a broker like the
    catalogue's topics) are replicated, from the cluster (``infra.topics.internal_topic_replication``),
    and when finished matches are forgotten."""
    global forget_after_ms
    app.conf.topic_replication_factor = replicas
    # The table made its changelog topic (with a copy of its configs) when it was declared above.
    changelog = match_state.changelog_topic
    changelog.config = {**(changelog.config or {}), "min.insync.replicas": str(min_insync)}
    forget_after_ms = int(forget_after_h * 3_600_000)


def processor() -> RecordProcessor:
    """The record processor, with the emotion model loaded once per worker."""
    global _processor
    if _processor is None:
        from streams.emotion import EmotionModel
        from streams.join import AcousticEmotion

        model = EmotionModel.load()

        def predict(features):
            return [AcousticEmotion(e.probabilities, e.arousal, e.valence) for e in model.predict(features)]

        _processor = RecordProcessor(settings, predict=predict, model_version=model.version, load=match_state.get)
    return _processor


def _topic(name: str) -> faust.types.TopicT:
    if name not in _outputs:
        _outputs[name] = app.topic(name, key_type=bytes, value_type=bytes)
    return _outputs[name]


def _write_state(partition: int, key: bytes, state: bytes | None) -> Any:
    """``match_state[key] = state`` (None: delete) from outside the record's stream context: the
    changelog partition is the match's (the source topics are co-partitioned with the table).
    Returns the changelog send's future, which `Checkpoints` awaits before acking."""
    with processor().times.timing("checkpoint"):
        if state is None:
            match_state.data.pop(key, None)
        else:
            match_state.data[key] = state
        return match_state.send_changelog(partition, key, state)


def _in_table(work: RecordProcessor, key: bytes) -> bool:
    """Whether the table holds the match's current state (what snapshot() last gave, written)."""
    live = work.matches.get(key)
    return live is not None and live.snapshot is not None and match_state.data.get(key) is live.snapshot


# A match's state is checkpointed after this many of its records or when its oldest unsaved
# record is this old: ~40 kB of JSON per match every 2-3 s. With the encoder's one-second
# frames the age decides (every ~3 s of a live match; a backlog fills 20 records first); with
# 100 ms frames, 20 records (2 s). Checkpointing every second cost the worker 8 % of a core
# and the broker 4 MB/s of changelog at 100 matches. The committed offsets trail the records
# read by about this much audio per match (plus Faust's 1 s commit interval): ~4 s, 300-500
# records at 100 matches of one-second frames; a crash repeats at most ~3 s of each match's audio.
CHECKPOINT_RECORDS = 20
CHECKPOINT_AGE_S = 3.0
IDLE_MATCH_S = 600.0  # a match with no record for this long is dropped from memory (kept in the table)
_checkpoints: list[Checkpoints] = []  # of the running agent (one per worker process)


def _records_waiting(work: RecordProcessor) -> bool:
    """Whether records wait for the agent: a batch in hand, or a source partition whose end (as
    the consumer last heard it) is past the records taken from it."""
    if _in_hand[0]:
        return True
    try:
        assigned = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet (starting, rebalancing): nothing known to wait
        return False
    for tp in assigned:
        if tp.topic in (work.audio_topic, work.events_topic) and tp in _read_upto:
            try:
                if (app.consumer.highwater(tp) or 0) > _read_upto[tp]:
                    return True
            except Exception:  # noqa: BLE001 - a partition being revoked: not waiting here
                continue
    return False


async def _tick(keeper: Checkpoints, work: RecordProcessor) -> None:
    """Checkpoint quiet matches; and every match when Faust asks the streams to drain
    (flow suspended: a rebalance or a shutdown waits for all records to be acked). Now and
    then, let go of matches that went quiet (their state is in the table), and delete the
    matches that finished from the table. Every second, tell /healthz whether records are waiting."""
    ticks = 0
    while True:
        await asyncio.sleep(0.05)
        try:
            with work.times.timing("checkpoint"):
                if not app.flow_control.is_active():
                    keeper.checkpoint_all()
                else:
                    keeper.checkpoint_stale()
            ticks += 1
            if ticks % 20 == 0:
                liveness.busy(_records_waiting(work))
            if ticks % 1200 == 0:  # every minute
                work.forget([key for key in work.idle(IDLE_MATCH_S) if _in_table(work, key)])
            if ticks % 100 == 0:  # every 5 s
                _delete_finished(keeper, work)
        except Exception as exc:  # noqa: BLE001 - without checkpoints nothing is acked again
            exit_without_commit(exc, "checkpointing failed")


def _delete_finished(keeper: Checkpoints, work: RecordProcessor) -> None:
    for key, partition in work.finished(forget_after_ms, match_state.data.items()):
        keeper.delete(key, partition)  # after its last checkpoint, in the changelog's order
        work.forget([key])
        FORGOTTEN.inc()
        log.info("forgot match_id=%s (its partition heard nothing of it for %.1f h)", key.decode(errors="replace"),
                 forget_after_ms / 3_600_000)


@app.on_partitions_revoked.connect
async def _forget_revoked(sender: Any, revoked: set, **kwargs: Any) -> None:
    """The revoked partitions were drained (all checkpointed and acked): forget their
    matches, so that a partition coming back is loaded from the table, not from memory."""
    work = processor()
    work.drop_partitions({tp.partition for tp in revoked if tp.topic in (work.audio_topic, work.events_topic)})
    for tp in revoked:
        _read_upto.pop(tp, None)
    for keeper in _checkpoints:
        keeper.forget(revoked)


# Records are taken in batches of up to BATCH_MAX, or what arrived within BATCH_WITHIN_S. A
# helper process analyses a batch's audio frames (streams/offload.py) while the previous batch
# is applied here; frames it has not finished when their batch is applied are analysed here.
BATCH_MAX = 256
BATCH_WITHIN_S = 0.005
BATCHES_AHEAD = 2  # batches taken and sent to the helper before the one being applied is done
# How long a batch waits for the helper's features before the worker analyses its frames
# itself. Always wait, even with batches queued: the helper analyses a frame faster than the
# worker applies one, and a batch the worker analyses itself is analysed by the helper anyway,
# which makes the helper late for the next batch too. Not waiting when behind turned a short
# hiccup into a lasting 2 s delay at 100-120 matches (the worker doing the helper's work at
# half its capacity); waiting raised the ceiling from 140 to 150 matches. A batch of much
# audio (a backlog: up to 256 one-second frames, ~1 s of the helper's work) gets more
# patience, in proportion: with 0.1 s the worker analysed most of such a batch itself, work
# the helper did anyway (the plain loop in tests/benchmarks/bench_worker.py always waits).
HELPER_PATIENCE_S = 0.1
HELPER_PATIENCE_PER_AUDIO_S = 0.01  # the helper analyses 1 s of audio in ~4 ms


@app.agent(sources)
async def join_crowd_and_match(stream: faust.StreamT) -> None:
    from streams.offload import FrameOffload

    work = processor()
    keeper = Checkpoints(snapshot=work.snapshot, write=_write_state, every_records=CHECKPOINT_RECORDS,
                         max_age_s=CHECKPOINT_AGE_S)
    offload = FrameOffload(enabled=settings.frame_helper)  # CROWDSOUND_FRAME_HELPER=0: no helper
    offload.start()
    batches: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=BATCHES_AHEAD)
    applier = asyncio.ensure_future(_apply_batches(work, keeper, offload, batches))
    tasks = [asyncio.ensure_future(keeper.run()), asyncio.ensure_future(_tick(keeper, work)), applier,
             asyncio.ensure_future(watch_loop())]
    _checkpoints.append(keeper)
    _time_commits()
    times = work.times
    try:
        waiting = time.perf_counter()
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):  # acked by `keeper`
            observe("fetch", time.perf_counter() - waiting)
            if applier.done():
                applier.result()  # it failed: raise here
            taken = time.time()
            for event in events:
                RECORD_WAIT.observe(max(0.0, taken - event.message.timestamp))
            with times.timing("decode"):
                decoded = [_decode(work, event.message) for event in events]
            with times.timing("features"):  # handing the frames to the helper is the features' cost
                submitted = offload.submit([d for d in decoded if d is not None])
            for event in events:
                _read_upto[event.message.tp] = event.message.offset + 1
            _in_hand[0] += 1
            await batches.put((events, decoded, submitted))
            waiting = time.perf_counter()
    finally:
        for task in tasks:
            task.cancel()
        offload.close()
        _checkpoints.remove(keeper)


async def _apply_batches(work: RecordProcessor, keeper: Checkpoints, offload: Any,
                         batches: asyncio.Queue[tuple[Any, ...]]) -> None:
    """Apply the batches in order, send their outputs, and hand their records to `keeper`."""
    try:
        while True:
            events, decoded, submitted = await batches.get()
            patience_s = HELPER_PATIENCE_S + HELPER_PATIENCE_PER_AUDIO_S * submitted.audio_s
            await _apply_batch(work, keeper, offload, patience_s, events, decoded, submitted)
            _in_hand[0] -= 1
            liveness.progressed()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - records of this batch would never be acked
        exit_without_commit(exc, "applying a batch failed")


async def _apply_batch(work: RecordProcessor, keeper: Checkpoints, offload: Any, patience_s: float, events: Any,
                       decoded: Any, submitted: Any) -> None:
    times = work.times
    # The helper's features if they are there (in time); frames it has not done are analysed here.
    with times.timing("helper_wait"):
        analyses = await offload.ready_within(submitted, patience_s)
    index = 0
    mark = times.mark()
    for event, record in zip(events, decoded, strict=True):
        message = event.message
        analysis = None
        if record is not None:
            analysis = analyses.get(index)
            index += 1
        try:
            applied = work.apply(topic=message.topic, partition=message.partition, offset=message.offset,
                                 key=message.key, value=message.value, decoded=record, analysis=analysis,
                                 timestamp_ms=round(message.timestamp * 1000) if message.timestamp else None)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the other matches
            applied = _failed(work, message, exc)
        mark = times.lap("join", mark)  # (less the features and the model, counted apart)
        sent = [await _topic(out.topic).send(key=out.key, value=out.value, timestamp=(
            out.timestamp_ms / 1000 if out.timestamp_ms else None)) for out in applied.outputs]
        mark = times.lap("produce", mark)
        keeper.add(message.tp, event, match=applied.match, partition=message.partition, outputs=sent)
        mark = times.lap("checkpoint", mark)
    offload.done(submitted)
    times.publish()


def _time_commits() -> None:
    """Time Faust's offset commits (the "commit" stage: a producer flush, then the commit)."""
    consumer = app.consumer
    commit = consumer.commit
    if getattr(commit, "timed", False):
        return

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await commit(*args, **kwargs)
        finally:
            observe("commit", time.perf_counter() - started)

    timed.timed = True  # type: ignore[attr-defined]
    consumer.commit = timed


def _decode(work: RecordProcessor, message: Any) -> Any:
    try:
        return work.decode_record(topic=message.topic, partition=message.partition, offset=message.offset,
                                  key=message.key, value=message.value)
    except Exception:  # noqa: BLE001 - apply() decodes it again and reports the failure
        return None


def _failed(work: RecordProcessor, message: Any, exc: Exception) -> Applied:
    log.exception("record %s[%s]@%s failed", message.topic, message.partition, message.offset)
    return Applied(outputs=[work.dead_letter(message.topic, message.partition, message.offset, message.key,
                                             message.value, exc)])
