"""How the composer ends a failed transaction (consumers/composer.py, ``Composer._abort``): the
decision alone, against a stand-in for librdkafka's transactional calls, since the broker
outage that makes a commit time out and go on in the background cannot be timed in a test
(tests/faults/test_broker_crash.py meets it now and then)."""

from __future__ import annotations

from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException

from consumers.composer import Composer
from infra.watchdog import CallWatchdog

CONFLICT = KafkaException(KafkaError(KafkaError._CONFLICT,
                                     "Conflicting commit_transaction API call is already in progress"))
TIMED_OUT = KafkaException(KafkaError(KafkaError._TIMED_OUT, "Transactional API operation timed out", retriable=True))
MUST_ABORT = KafkaException(KafkaError(KafkaError._FENCED, "aborted by the coordinator", txn_requires_abort=True))


class Transactions:
    """librdkafka after a commit_transaction call failed: every other call is refused until
    commit_transaction is called again; ``commit_results`` are what those calls give."""

    def __init__(self, commit_results: list[Exception | None]) -> None:
        self.commit_results = commit_results
        self.calls: list[str] = []
        self.commit_pending = True

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        assert len(self.calls) < 20, "abort_transaction refused for ever: the commit was never finished"
        if self.commit_pending:
            raise CONFLICT

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        result = self.commit_results.pop(0)
        if result is not None:
            if result is MUST_ABORT:
                self.commit_pending = False
            raise result
        self.commit_pending = False


def _abort(producer: Transactions, *, commit_unfinished: bool) -> SimpleNamespace:
    composer = SimpleNamespace(producer=producer, watchdog=CallWatchdog(), commit_unfinished=commit_unfinished)
    Composer._abort(composer)  # type: ignore[arg-type]
    return composer


def test_a_commit_that_timed_out_is_finished_not_aborted_against_the_conflict_for_ever(monkeypatch):
    monkeypatch.setattr("consumers.composer.time.sleep", lambda s: None)
    producer = Transactions([TIMED_OUT, None])  # the broker is back on the second call
    composer = _abort(producer, commit_unfinished=True)
    assert producer.calls == ["commit", "commit"]
    assert not composer.commit_unfinished


def test_a_commit_that_failed_for_good_is_aborted(monkeypatch):
    monkeypatch.setattr("consumers.composer.time.sleep", lambda s: None)
    producer = Transactions([MUST_ABORT])
    composer = _abort(producer, commit_unfinished=True)
    assert producer.calls == ["commit", "abort"]
    assert not composer.commit_unfinished


def test_any_other_failure_is_aborted():
    producer = Transactions([])
    producer.commit_pending = False
    _abort(producer, commit_unfinished=False)
    assert producer.calls == ["abort"]
