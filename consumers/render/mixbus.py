"""An overlap-add buffer of float audio from an emitted cursor onward.

Parts (bars, stingers) overlap: each rings and reverberates past the next one's start. The
bus adds each part at its sample position and hands out the sum in order. Sums are float64
and taken in the order parts were added, so re-adding the same parts in the same order after
a restart gives the same bits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MixBus"]


class MixBus:
    """Float64 stereo samples from ``cursor`` on; everything before it has been taken."""

    def __init__(self, cursor: int = 0) -> None:
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        self._cursor = cursor
        # _buf[_offset] is the sample at the cursor; _buf[_used:] is all zeros (never added to).
        self._buf = np.zeros((0, 2))
        self._offset = 0
        self._used = 0

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def end(self) -> int:
        """First sample after everything added so far (the cursor when nothing is pending)."""
        return self._cursor + max(0, self._used - self._offset)

    def add(self, start: int, audio: np.ndarray) -> None:
        """Add ``audio`` (n, 2) at absolute sample ``start``; what falls before the cursor is dropped."""
        if audio.ndim != 2 or audio.shape[1] != 2:
            raise ValueError(f"expected stereo audio of shape (n, 2), got {audio.shape}")
        skip = max(0, self._cursor - start)
        audio = audio[skip:]
        if len(audio) == 0:
            return
        at = self._offset + (start + skip - self._cursor)
        if at + len(audio) > len(self._buf):
            # Compact and grow by doubling: amortized O(1) per sample.
            pending = self._buf[self._offset:self._used]
            size = max(at - self._offset + len(audio), 2 * len(pending), 1 << 16)
            grown = np.zeros((size, 2))
            grown[:len(pending)] = pending
            at -= self._offset
            self._buf, self._used, self._offset = grown, len(pending), 0
        self._buf[at:at + len(audio)] += audio
        self._used = max(self._used, at + len(audio))

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (zeros where nothing was added); advances the cursor."""
        if n < 0:
            raise ValueError(f"cannot take {n} samples")
        out = np.zeros((n, 2))
        have = max(0, min(n, self._used - self._offset))
        out[:have] = self._buf[self._offset:self._offset + have]
        self._offset += n
        self._cursor += n
        if self._offset >= self._used:  # nothing pending: start over at the front
            self._buf[:self._used] = 0.0
            self._offset = self._used = 0
        return out
