"""The encoder's on-disk spool: order, bounds, acknowledgement and crash recovery."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.spool import DiskSpool


def _fill(spool: DiskSpool, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        assert spool.append(key=b"m1", value=f"frame-{i}".encode() * 50, timestamp_ms=1000 + i)


def _drain(spool: DiskSpool) -> list[bytes]:
    out = []
    while (record := spool.next_unsent()) is not None:
        out.append(record.value)
    return out


def test_records_come_back_in_order_across_segments(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=2000)
    _fill(spool, 100)
    values = _drain(spool)
    assert values == [f"frame-{i}".encode() * 50 for i in range(100)]
    assert len(list(tmp_path.glob("*.seg"))) > 5


def test_acknowledged_segments_are_deleted_and_the_rest_survive_a_restart(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=2000)
    _fill(spool, 100)
    _drain(spool)
    spool.ack_through(59)
    segments_after_ack = len(list(tmp_path.glob("*.seg")))
    spool.close()
    reopened = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=2000)
    assert reopened.depth == 40
    assert [r.number for r in iter(reopened.next_unsent, None)] == list(range(60, 100))
    assert segments_after_ack < 20


def test_a_full_spool_refuses_new_records_and_accepts_again_after_acks(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=5000, segment_bytes=1000)
    accepted = sum(spool.append(key=b"k", value=bytes(300), timestamp_ms=0) for _ in range(100))
    assert 10 <= accepted < 20
    assert not spool.append(key=b"k", value=bytes(300), timestamp_ms=0)
    while spool.next_unsent() is not None:
        pass
    spool.ack_through(accepted - 1)
    assert spool.append(key=b"k", value=bytes(300), timestamp_ms=0)


def test_a_torn_last_record_is_cut_off_on_restart(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=10_000_000)
    _fill(spool, 5)
    spool.close()
    [segment] = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # a crash in the middle of the last write
    reopened = DiskSpool(tmp_path, max_bytes=10_000_000)
    assert reopened.depth == 4
    assert [r.value for r in iter(reopened.next_unsent, None)] == [f"frame-{i}".encode() * 50 for i in range(4)]
    assert reopened.append(key=b"m1", value=b"after", timestamp_ms=0)
    assert reopened.depth == 5


def test_rewind_hands_out_the_unacknowledged_records_again(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=1500)
    _fill(spool, 30)
    _drain(spool)
    spool.ack_through(9)
    spool.rewind()
    assert [r.number for r in iter(spool.next_unsent, None)] == list(range(10, 30))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 20)), min_size=1, max_size=15))
def test_interleaved_appends_reads_acks_and_restarts_lose_nothing_and_resend_only_unacked(tmp_path_factory, steps):
    directory = tmp_path_factory.mktemp("spool")
    spool = DiskSpool(directory, max_bytes=10_000_000, segment_bytes=700)
    delivered: list[int] = []
    appended = 0
    for count, ack_lag in steps:
        _fill(spool, count, start=appended)
        appended += count
        before = len(delivered)
        while (record := spool.next_unsent()) is not None:
            delivered.append(record.number)
        assert delivered[before:] == sorted(delivered[before:])  # in order within a session
        spool.ack_through(len(set(delivered)) - 1 - ack_lag)
        if ack_lag % 3 == 0:  # the encoder restarts: what was not acked is sent again
            acked = spool.acked
            spool.close()
            spool = DiskSpool(directory, max_bytes=10_000_000, segment_bytes=700)
            assert spool.acked == acked and spool.depth == appended - acked
    while (record := spool.next_unsent()) is not None:
        delivered.append(record.number)
    assert sorted(set(delivered)) == list(range(appended))


def test_a_disk_that_refuses_a_record_is_a_full_spool_and_keeps_every_whole_record(tmp_path):
    """A file-size limit (like a full disk) stops appends cleanly: no crash, the torn record cut
    off, every record before it readable, and appends work again once there is room."""
    import subprocess
    import sys
    import textwrap

    child = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from producers.spool import DiskSpool
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # bytes per file
        spool = DiskSpool(Path({str(tmp_path / 'spool')!r}), max_bytes=10**9)
        kept = 0
        while spool.append(key=b"m", value=bytes([kept % 256]) * 3000, timestamp_ms=kept):
            kept += 1
        assert not spool.append(key=b"m", value=b"x" * 3000, timestamp_ms=0)
        print(kept, spool.refusal)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=False,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    kept, refusal = result.stdout.split(" ", 1)
    assert int(kept) == 100_000 // (3000 + 8 + 10 + 1)  # every record that fitted whole
    assert "refused" in refusal and "too large" in refusal.lower()
    spool = DiskSpool(tmp_path / "spool", max_bytes=10**9)
    records = [spool.next_unsent() for _ in range(int(kept))]
    assert [r.value[:1] for r in records] == [bytes([i % 256]) for i in range(int(kept))]
    assert spool.next_unsent() is None
    assert spool.append(key=b"m", value=b"y" * 3000, timestamp_ms=1)  # room again (no limit now)
