"""How a composer process runs (kept apart from the composer so the CLI parses without Kafka)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OUTPUT_CHOICES", "ComposerConfig"]

OUTPUT_CHOICES = ("audio", "control")


@dataclass(frozen=True)
class ComposerConfig:
    outputs: tuple[str, ...] = OUTPUT_CHOICES
    instance: str = ""          # stable per replica: it names the transactional id
    max_batch: int = 500
    poll_timeout_s: float = 0.1
    # Threads composing (rendering) the matches of a batch at once, each with its own synth
    # (audio only; the output is the same whatever the number).
    render_threads: int = 1
    transaction_budget_s: float = 2.0  # stop adding records to a transaction after this long
    # Transactions begin at most this often: windows arriving meanwhile join the next one. A
    # transaction costs the broker about the same whatever it holds (AddPartitions,
    # AddOffsets, TxnOffsetCommit, EndTxn and a marker per partition): one per window at 100
    # live matches (~100/s) took a quarter of a core of the broker and ~20 % of the composer.
    # At most this much is added to the emotion -> music latency. 10 ms since transactions take
    # turns on two producers (consumers/composer.py): at 100 live matches on a 2-core box,
    # emotion -> control received p50 ~16 ms and p99 under 50 ms, for ~10 points more of a core
    # on the broker than 25 ms.
    gather_s: float = 0.010
    # A match is forgotten (its state tombstoned) once another match of its partition has been
    # heard this much later (event time: the windows' audio wall clock, so restarts and
    # replays of the input forget at the same record).
    forget_after_h: float = 6.0
    # An operator cue older than this when it arrives (the composer was down) is not played:
    # a goal stinger a minute late is worse than none.
    cue_max_age_s: float = 60.0

    @property
    def group_id_suffix(self) -> str:
        return "-".join(sorted(self.outputs))
