"""A bounded, on-disk, append-only spool of records waiting for Kafka.

The venue encoder writes every frame here first and sends from here, so a broker outage (or
a network cut at the venue) fills the disk instead of losing audio, and frames go out in
capture order once the broker is back. Records stay until Kafka acknowledges them; a
crashed encoder re-sends what was not yet acknowledged when it starts again.

A full disk is a full spool, not a crash: a record the disk cannot take (no space left, a
file-size limit) is refused like one beyond ``max_bytes``, the segment is cut back to its last
whole record, and :attr:`DiskSpool.refusal` says why.

Layout: ``<dir>/<first record number>.seg`` files of framed records, and ``<dir>/acked``
holding how many records have been acknowledged. A record is::

    u32 body length | u32 crc32(body) | body = u64 timestamp_ms | u16 key length | key | value
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from infra.errors import CrowdsoundError

__all__ = ["DiskSpool", "SpooledRecord"]

log = logging.getLogger("crowdsound.spool")

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
        self.refusal = ""  # why the last append was refused ("" when it was not)

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
        """Append one record; False (and nothing written, :attr:`refusal` says why) when the
        spool is full or its disk cannot take the record."""
        body = _BODY_HEAD.pack(timestamp_ms, len(key)) + key + value
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        if self.depth and self.size_bytes + len(frame) > self.max_bytes:
            self.refusal = f"the spool's limit of {self.max_bytes / 1024 / 1024:.0f} MiB"
            return False
        writer = None
        try:
            writer = self._current_writer(len(frame))
            before = writer.tell()
            writer.write(frame)
            writer.flush()  # into the OS: survives a crash of this process
        except OSError as exc:  # ENOSPC, EFBIG (a file-size limit), EDQUOT...
            self.refusal = f"the disk refused it ({exc.strerror or exc})"
            if writer is not None:
                self._cut_back(before)
            return False
        self.refusal = ""
        self._appended += 1
        return True

    def _cut_back(self, size: int) -> None:
        """Drop a record the disk took only part of: close the segment (its buffer unwritten)
        and cut it back to ``size``, the end of its last whole record."""
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except OSError:
            pass  # the buffered rest of the record could not be written either; cut below
        try:
            os.truncate(self._path(self._writer_start), size)
        except OSError as exc:  # the torn tail is cut when the spool is opened next
            log.error("cannot cut the torn record off %s: %s", self._path(self._writer_start), exc)

    def sync(self) -> None:
        """fsync the open segment (survives a power cut); call about once a second."""
        if self._writer is not None:
            try:
                os.fsync(self._writer.fileno())
            except OSError as exc:  # the records are in the OS; a full disk is reported by append
                log.error("cannot sync the spool %s: %s", self.directory, exc)

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
        try:
            tmp.write_text(str(self._acked))
            tmp.replace(self.directory / "acked")
        except OSError as exc:  # a full disk: the next ack writes it (a crash before re-sends a few records)
            log.warning("cannot record acknowledged records in %s: %s", self.directory, exc)
        # A segment can go once the next one starts at or below the acknowledged count; all of
        # them once everything is acknowledged (a full disk gets its space back at once).
        if self._acked == self._appended and self._segments:
            self._close_reader()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._segments.append(self._appended)  # where the next segment starts; its file does not exist yet
        while len(self._segments) > 1 and self._segments[1] <= self._acked:
            start = self._segments.pop(0)
            if self._reader is not None and self._reader[0] == start:
                self._close_reader()
            self._path(start).unlink(missing_ok=True)
        if self._acked == self._appended:
            self._segments = []

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
