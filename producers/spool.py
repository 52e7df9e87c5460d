"""A bounded, on-disk, append-only spool of records waiting for Kafka.

The venue encoder writes every frame here first and sends from here, so a broker outage (or
a network cut at the venue) fills the disk instead of losing audio, and frames go out in
capture order once the broker is back. Records stay until Kafka acknowledges them; a
crashed encoder re-sends what was not yet acknowledged when it starts again.

Layout: ``<dir>/<first record number>.seg`` files of framed records, and ``<dir>/acked``
holding how many records have been acknowledged. A record is::

    u32 body length | u32 crc32(body) | body = u64 timestamp_ms | u16 key length | key | value
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from infra.errors import CrowdsoundError

__all__ = ["DiskSpool", "SpooledRecord"]

_FRAME = struct.Struct("<II")
_BODY_HEAD = struct.Struct("<QH")


@dataclass(frozen=True)
class SpooledRecord:
    number: int  # position in the spool, from 0, across restarts
    timestamp_ms: int
    key: bytes
    value: bytes


class DiskSpool:
    """Append records, read them back in order, and drop them once acknowledged.

    Parameters
    ----------
    directory
        Where the segments live; created if missing. One spool per encoder.
    max_bytes
        Bound on the unacknowledged data on disk; :meth:`append` refuses records beyond it.
    segment_bytes
        Size at which a new segment file is started (acknowledged segments are deleted).
    """

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._acked = self._read_acked()
        self._segments = sorted(int(p.stem) for p in directory.glob("*.seg"))
        self._appended = self._count_records()
        if self._acked > self._appended:  # cursor from a spool whose segments were removed
            self._acked = self._appended
        self._writer = None
        self._writer_start = -1
        self._reader_pos = self._acked  # next record to hand out
        self._reader: tuple[int, object, int] | None = None  # (segment start, file, next record no.)

    # -- state ---------------------------------------------------------------------------
    @property
    def appended(self) -> int:
        """Records ever appended (the next record's number)."""
        return self._appended

    @property
    def acked(self) -> int:
        """Records acknowledged (all records below this number are gone or may go)."""
        return self._acked

    @property
    def depth(self) -> int:
        """Records waiting for acknowledgement."""
        return self._appended - self._acked

    @property
    def size_bytes(self) -> int:
        return sum(self._path(start).stat().st_size for start in self._segments if self._path(start).exists())

    # -- writing -------------------------------------------------------------------------
    def append(self, *, key: bytes, value: bytes, timestamp_ms: int) -> bool:
        """Append one record; False (and nothing written) when the spool is full."""
        body = _BODY_HEAD.pack(timestamp_ms, len(key)) + key + value
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        if self.depth and self.size_bytes + len(frame) > self.max_bytes:
            return False
        writer = self._current_writer(len(frame))
        writer.write(frame)
        writer.flush()  # into the OS: survives a crash of this process
        self._appended += 1
        return True

    def sync(self) -> None:
        """fsync the open segment (survives a power cut); call about once a second."""
        if self._writer is not None:
            os.fsync(self._writer.fileno())

    def _current_writer(self, incoming: int):
        if self._writer is not None and self._writer.tell() + incoming > self.segment_bytes:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            start = self._segments[-1] if self._segments else self._appended
            path = self._path(start)
            if not self._segments or path.stat().st_size + incoming > self.segment_bytes:
                start = self._appended
                self._segments.append(start)
                path = self._path(start)
            self._writer = open(path, "ab")  # noqa: SIM115 - kept open across appends
            self._writer_start = start
        return self._writer

    # -- reading -------------------------------------------------------------------------
    def next_unsent(self) -> SpooledRecord | None:
        """The next record not yet handed out since start-up (or :meth:`rewind`), if any."""
        self._reader_pos = max(self._reader_pos, self._acked)
        if self._reader_pos >= self._appended:
            return None
        record = self._read(self._reader_pos)
        self._reader_pos += 1
        return record

    def rewind(self) -> None:
        """Hand out again everything not acknowledged (after a failed delivery)."""
        self._reader_pos = self._acked
        self._close_reader()

    def _read(self, number: int) -> SpooledRecord:
        start = max(s for s in self._segments if s <= number)
        if self._reader is None or self._reader[0] != start or self._reader[2] != number:
            self._close_reader()
            handle = open(self._path(start), "rb")  # noqa: SIM115 - kept open while reading on
            for _ in range(number - start):
                self._skip(handle)
            self._reader = (start, handle, number)
        seg_start, handle, _ = self._reader
        record = self._decode(handle, number)
        self._reader = (seg_start, handle, number + 1)
        return record

    def _decode(self, handle, number: int) -> SpooledRecord:
        head = handle.read(_FRAME.size)
        if len(head) < _FRAME.size:
            raise CrowdsoundError(f"spool {self.directory}: record {number} is missing (truncated segment)")
        length, crc = _FRAME.unpack(head)
        body = handle.read(length)
        if len(body) != length or zlib.crc32(body) != crc:
            raise CrowdsoundError(f"spool {self.directory}: record {number} is corrupt")
        timestamp_ms, key_length = _BODY_HEAD.unpack_from(body)
        key_end = _BODY_HEAD.size + key_length
        return SpooledRecord(number, timestamp_ms, body[_BODY_HEAD.size:key_end], body[key_end:])

    @staticmethod
    def _skip(handle) -> None:
        length, _ = _FRAME.unpack(handle.read(_FRAME.size))
        handle.seek(length, os.SEEK_CUR)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    # -- acknowledging -------------------------------------------------------------------
    def ack_through(self, number: int) -> None:
        """Records up to and including ``number`` are safely in Kafka."""
        if number < self._acked:
            return
        self._acked = number + 1
        tmp = self.directory / "acked.tmp"
        tmp.write_text(str(self._acked))
        tmp.replace(self.directory / "acked")
        # A segment can go once the next one starts at or below the acknowledged count.
        while len(self._segments) > 1 and self._segments[1] <= self._acked:
            start = self._segments.pop(0)
            if self._reader is not None and self._reader[0] == start:
                self._close_reader()
            self._path(start).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the files; when everything is acknowledged, leave an empty spool."""
        self._close_reader()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._acked == self._appended:
            for start in self._segments:
                self._path(start).unlink(missing_ok=True)
            self._segments = []

    # -- start-up ------------------------------------------------------------------------
    def _path(self, start: int) -> Path:
        return self.directory / f"{start:020d}.seg"

    def _read_acked(self) -> int:
        try:
            return int((self.directory / "acked").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _count_records(self) -> int:
        """Records in the spool: the last segment's start plus its complete records.

        A record torn by a crash mid-write is cut off: it was never acknowledged to anyone.
        """
        if not self._segments:
            return self._acked
        path = self._path(self._segments[-1])
        size = path.stat().st_size
        good_end = count = 0
        with open(path, "rb") as handle:
            while True:
                head = handle.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    break
                length, _ = _FRAME.unpack(head)
                if good_end + _FRAME.size + length > size:
                    break
                handle.seek(length, os.SEEK_CUR)
                good_end += _FRAME.size + length
                count += 1
        if good_end < size:
            os.truncate(path, good_end)
        return self._segments[-1] + count
