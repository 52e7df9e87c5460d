"""Render a match script to crowd audio, streamed, deterministic and chunk-independent.

The match is made in fixed internal chunks of :data:`CHUNK_S` seconds. Chunk ``j`` owns
the grains (voices, claps, whistles) that *start* inside it; their random times, choices
and gains come from a generator seeded by ``(seed, j)`` only. The chunk's dry buses are
convolved with the room (one FFT per bus) and its wet result, which rings on for up to
``MAX_GRAIN_S + IR_S`` past the chunk, is added into the following chunks. So a chunk's
output is exactly the sum of the contributions of the few chunks before it, in a fixed
order: rendering from any start (with those few chunks as warm-up) or in any block size
gives the same samples, bit for bit, and memory stays bounded for a 90-minute match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft

from infra.errors import CrowdsoundError
from producers.stadium.chants import chant_bank
from producers.stadium.crowd import LAYERS, CrowdPlan, crowd_plan
from producers.stadium.room import BUSES, IR_S, room_spectra
from producers.stadium.script import MatchScript
from producers.stadium.voices import MAX_GRAIN_S, grain_bank, referee_whistle

__all__ = ["CHUNK_S", "render_stadium", "write_wav"]

CHUNK_S = 4  # internal chunk, s: long enough that FFT convolution is cheap per second
_STEPS = 400  # control steps per chunk (10 ms): rates are piecewise constant on them
_CHANT_SLACK_S = 0.15  # chant voices start up to this late; chant notes are this much shorter than MAX_GRAIN_S

# Amplitude of one grain (RMS 1 in the bank) per layer: a shout is ~12 dB above talking.
_LAYER_GAIN = {
    "talk": 0.22, "shout": 1.15, "scream": 0.8, "ooh": 0.55, "groan": 0.5, "boo": 0.45, "whistle": 1.1, "clap": 0.5,
}
_EFFORT = 0.5  # natural-log spread of how loudly people shout or talk: ~4 dB
# People in the stand by the microphones are 5 to 45 m away, spread evenly over its
# area: the few nearest are up to ~20 dB louder than most, as at a real stadium mic,
# and it is their individual voices that make a crowd's loudness flicker.
_NEAR_M = (5.0, 45.0)
_CHANT_VOICES = 220.0  # voices on a chant note for a whole crowd of one section
_CHANT_CLAPS = 150.0
_CHANT_GAIN = 0.8
_REFEREE_GAIN = 0.5
_BED_GAIN = 0.35  # white noise amplitude per unit bed level, before the bed's filter
_MASTER = 0.0063  # murmur about -28 dBFS RMS, a home goal's roar about -11 dBFS (75 % home crowd)
_KNEE = 0.8  # soft limiter: untouched below, never reaches 1.0 above

# Which buses a section's sounds go to, with probabilities: home fans fill the stand by
# the microphones and those across the pitch; the away fans sit in one end.
_SECTION_BUSES = (
    (np.array([BUSES.index("near"), BUSES.index("far")]), np.array([0.5, 0.5])),
    (np.array([BUSES.index("away")]), np.array([1.0])),
)
_BED = BUSES.index("bed")
_NEAR = BUSES.index("near")
_REFEREE_BUS = BUSES.index("far")


@dataclass(frozen=True)
class _Layout:
    """Sample counts of the chunked rendering at one sample rate."""

    sample_rate: int
    chunk: int  # samples per chunk
    pad: int  # room after a chunk for grains that start in it
    ir: int  # impulse response length
    warmup: int  # chunks before the first one wanted that still reach into it
    nfft: int

    @classmethod
    def at(cls, sample_rate: int) -> _Layout:
        chunk = CHUNK_S * sample_rate
        pad = math.ceil((MAX_GRAIN_S + _CHANT_SLACK_S) * sample_rate)
        ir = int(IR_S * sample_rate)
        span = chunk + pad + ir - 1  # the wet result of one chunk
        return cls(sample_rate, chunk, pad, ir, warmup=math.ceil((pad + ir - 1) / chunk),
                   nfft=fft.next_fast_len(span, real=True))

    @property
    def span(self) -> int:
        return self.chunk + self.pad + self.ir - 1


class _Stadium:
    """The renderer of one script at one sample rate and channel count."""

    def __init__(self, script: MatchScript, sample_rate: int, channels: int) -> None:
        self.script = script
        self.layout = _Layout.at(sample_rate)
        self.channels = channels
        self.bank = grain_bank(script.seed, sample_rate)
        self.plan: CrowdPlan = crowd_plan(script)
        self.room = room_spectra(script.seed, sample_rate, channels, self.layout.nfft)
        self.whistles = {blasts: referee_whistle(sample_rate, blasts) for _, blasts in self.plan.referee}

    def _rng(self, chunk: int, purpose: int) -> np.random.Generator:
        # Chunks before the audio starts (warm-up, pre-roll) have negative indices.
        return np.random.default_rng([self.script.seed, chunk + 1_000_000, purpose])

    def dry(self, j: int) -> np.ndarray:
        """Dry buses of chunk ``j``: shape (len(BUSES), chunk + pad), float32."""
        lay = self.layout
        sr, chunk = lay.sample_rate, lay.chunk
        buses = np.zeros((len(BUSES), chunk + lay.pad), dtype=np.float32)
        step = chunk / _STEPS
        times = (j * chunk + (np.arange(_STEPS) + 0.5) * step) / sr
        rates = self.plan.rates(times)
        self._grains(buses, rates, self._rng(j, 1), step / sr)
        self._chants(buses, j, self._rng(j, 2))
        self._referee(buses, j)
        level = np.interp(np.arange(chunk) / step - 0.5, np.arange(_STEPS), CrowdPlan.bed_level(rates))
        noise = self._rng(j, 3).standard_normal(chunk, dtype=np.float32)
        buses[_BED, :chunk] = noise * (level * _BED_GAIN).astype(np.float32)
        return buses

    def _grains(self, buses: np.ndarray, rates: np.ndarray, rng: np.random.Generator, dt: float) -> None:
        step = self.layout.chunk / _STEPS
        for li, layer in enumerate(LAYERS):
            grains = self.bank.grains[layer]
            for section, (bus_ids, bus_p) in enumerate(_SECTION_BUSES):
                counts = rng.poisson(rates[li, section] * dt)
                total = int(counts.sum())
                if not total:
                    continue
                starts = ((np.repeat(np.arange(_STEPS), counts) + rng.random(total)) * step).astype(np.int64)
                which = rng.integers(0, len(grains), total)
                bus = rng.choice(bus_ids, total, p=bus_p)
                gains = _LAYER_GAIN[layer] * _loudness(rng, bus)
                for s, i, g, b in zip(starts.tolist(), which.tolist(), gains.tolist(), bus.tolist()):
                    grain = grains[i]
                    buses[b, s:s + len(grain)] += g * grain

    def _chants(self, buses: np.ndarray, j: int, rng: np.random.Generator) -> None:
        sr, chunk = self.layout.sample_rate, self.layout.chunk
        lo, hi = j * chunk, (j + 1) * chunk
        claps = self.bank.grains["clap"]
        for chant in self.plan.chants:
            start, end = round(chant.start_s * sr), round(chant.end_s * sr)
            if end <= lo or start >= hi:
                continue
            bank = chant_bank(self.script.seed, sr, chant.tune, chant.team, chant.tempo, chant.root_midi)
            beat = 60.0 / chant.tempo
            cycle = bank.tune.cycle_beats
            share = self.plan.shares[chant.section]
            bus_ids, bus_p = _SECTION_BUSES[chant.section]
            # (onset sample, grains, voices for a whole crowd, gain, mean lateness s): hands
            # keep the beat more tightly than voices do.
            hits: list[tuple[int, tuple[np.ndarray, ...], float, float, float]] = []
            first = max(0, math.floor((lo / sr - chant.start_s) / (cycle * beat)) - 1)
            last = math.floor((hi / sr - chant.start_s) / (cycle * beat)) + 1
            for c in range(first, last + 1):
                for note, voices in zip(bank.tune.notes, bank.voices):
                    hits.append((round((chant.start_s + (c * cycle + note.beat) * beat) * sr), voices,
                                 _CHANT_VOICES, _CHANT_GAIN, 0.035))
                for clap_beat in bank.tune.claps:
                    hits.append((round((chant.start_s + (c * cycle + clap_beat) * beat) * sr), claps,
                                 _CHANT_CLAPS, _LAYER_GAIN["clap"], 0.02))
            for onset, grains, crowd, gain, lateness in sorted(hits, key=lambda h: h[0]):
                if not (lo <= onset < hi and start <= onset < end):
                    continue
                # Voices join over the first bars and drop out at the end.
                joined = min(1.0, 0.3 + 0.7 * (onset - start) / (4.0 * sr)) * min(1.0, (end - onset) / (2.0 * sr))
                n = max(1, round(crowd * share * chant.intensity * joined))
                delays = np.minimum(rng.exponential(lateness, n), _CHANT_SLACK_S) * sr
                which = rng.integers(0, len(grains), n)
                bus = rng.choice(bus_ids, n, p=bus_p)
                gains = gain * _loudness(rng, bus)
                for d, i, g, b in zip(delays.astype(np.int64).tolist(), which.tolist(), gains.tolist(), bus.tolist()):
                    s = onset - lo + d
                    grain = grains[i]
                    buses[b, s:s + len(grain)] += g * grain

    def _referee(self, buses: np.ndarray, j: int) -> None:
        sr, chunk = self.layout.sample_rate, self.layout.chunk
        for start_s, blasts in self.plan.referee:
            s = round(start_s * sr) - j * chunk
            if 0 <= s < chunk:
                sound = self.whistles[blasts][: buses.shape[1] - s]
                buses[_REFEREE_BUS, s:s + len(sound)] += _REFEREE_GAIN * sound

    def wet(self, j: int) -> np.ndarray:
        """Chunk ``j`` heard at the microphones: shape (channels, span), float32; index 0 is
        the chunk's first sample, and it rings on past the chunk."""
        lay = self.layout
        spectra = fft.rfft(self.dry(j), lay.nfft, axis=-1)
        mixed = np.zeros((self.channels, spectra.shape[-1]), dtype=np.complex64)
        for b in range(len(BUSES)):
            mixed += spectra[b] * self.room.spectra[b]
        return fft.irfft(mixed, lay.nfft, axis=-1)[:, : lay.span].astype(np.float32, copy=False)

    def regions(self, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
        """Finished chunks ``first..last``: ``(j, samples of shape (chunk, channels))``."""
        lay = self.layout
        chunk = lay.chunk
        acc = np.zeros((self.channels, (lay.warmup + 1) * chunk), dtype=np.float32)
        for j in range(first - lay.warmup, last + 1):
            wet = self.wet(j)
            acc[:, : wet.shape[1]] += wet
            if j >= first:
                yield j, _finish(acc[:, :chunk])
            acc[:, :-chunk] = acc[:, chunk:]
            acc[:, -chunk:] = 0.0


def _loudness(rng: np.random.Generator, bus: np.ndarray) -> np.ndarray:
    """Signed amplitude factors, mean power 1, for grains going to ``bus`` (bus indices).

    Everyone varies in effort (log-normal); in the near stand distance matters too
    (amplitude 1/r, r spread evenly over the stand's area). The sign is random so copies
    of one bank grain never reinforce each other.
    """
    n = len(bus)
    gains = np.exp(rng.normal(0.0, _EFFORT, n) - _EFFORT**2)
    near = bus == _NEAR
    if np.any(near):
        r0, r1 = _NEAR_M
        r = np.sqrt(rng.uniform(r0 * r0, r1 * r1, int(near.sum())))
        mean_power = 2.0 * np.log(r1 / r0) / (r1 * r1 - r0 * r0)  # E[1/r^2]
        gains[near] /= r * np.sqrt(mean_power)
    return gains * rng.choice([-1.0, 1.0], n)


def _finish(x: np.ndarray) -> np.ndarray:
    """Master gain and a memoryless soft limiter (so chunks stay independent): samples
    below the knee pass untouched, louder ones bend towards but never reach 1.0."""
    y = x * np.float32(_MASTER)
    mag = np.abs(y)
    over = mag > _KNEE
    if np.any(over):
        bent = _KNEE + (1.0 - _KNEE) * np.tanh((mag[over] - _KNEE) / (1.0 - _KNEE))
        y[over] = np.sign(y[over]) * bent.astype(np.float32)
    return np.ascontiguousarray(y.T)


def render_stadium(script: MatchScript, *, sample_rate: int = 48000, channels: int = 1, block_ms: int = 100,
                   start_ms: int = 0, end_ms: int | None = None) -> Iterator[np.ndarray]:
    """Render the crowd of ``script`` as a stream of audio blocks.

    Parameters
    ----------
    script : MatchScript
        The match; ``script.seed`` fixes every random choice.
    sample_rate : int
        Hz (8000-192000).
    channels : int
        1 (one microphone) or 2 (two microphones on the main stand, decorrelated).
    block_ms : int
        Length of each block, ms; ``sample_rate * block_ms / 1000`` must be whole.
    start_ms, end_ms : int
        The stretch to render, ms from the start of the audio (default: all of it).

    Returns
    -------
    Iterator of ndarray, shape (n, channels), float32, C-contiguous, values in (-1, 1);
    n = sample_rate * block_ms / 1000 except possibly the last. The samples are identical
    whatever ``block_ms``, ``start_ms`` and ``end_ms`` are.

    Raises
    ------
    CrowdsoundError
        For options out of range (at once, not on the first block).
    """
    if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 192_000:
        raise CrowdsoundError(f"sample rate must be a whole number of Hz from 8000 to 192000, got {sample_rate!r}")
    if channels not in (1, 2):
        raise CrowdsoundError(f"the stadium renders 1 or 2 channels, got {channels!r}")
    if not isinstance(block_ms, int) or block_ms <= 0 or (sample_rate * block_ms) % 1000:
        raise CrowdsoundError(f"block of {block_ms!r} ms is not a whole number of samples at {sample_rate} Hz")
    end_ms = script.duration_ms if end_ms is None else end_ms
    if not 0 <= start_ms <= end_ms <= script.duration_ms:
        raise CrowdsoundError(
            f"cannot render {start_ms}..{end_ms} ms of {script.name}: it lasts {script.duration_ms} ms"
        )
    return _blocks(script, sample_rate, channels, sample_rate * block_ms // 1000,
                   start_ms * sample_rate // 1000, end_ms * sample_rate // 1000)


def _blocks(script: MatchScript, sr: int, channels: int, block: int, first: int, last: int) -> Iterator[np.ndarray]:
    if last <= first:
        return
    stadium = _Stadium(script, sr, channels)
    chunk = stadium.layout.chunk
    leftover = np.zeros((0, channels), dtype=np.float32)
    for j, region in stadium.regions(first // chunk, (last - 1) // chunk):
        lo, hi = max(first - j * chunk, 0), min(last - j * chunk, chunk)
        pending = np.concatenate([leftover, region[lo:hi]]) if len(leftover) else region[lo:hi]
        full = len(pending) - len(pending) % block
        for i in range(0, full, block):
            yield pending[i:i + block]
        leftover = pending[full:]
    if len(leftover):
        yield leftover


def write_wav(script: MatchScript, path: str | Path, *, sample_rate: int = 48000, channels: int = 1,
              progress: Callable[[float], None] | None = None) -> None:
    """Render all of ``script`` into a 16-bit WAV file, streamed (bounded memory).

    ``progress``, if given, is called with the seconds of audio written so far.

    Raises
    ------
    CrowdsoundError
        For bad options, or when the file cannot be written.
    """
    import soundfile

    blocks = render_stadium(script, sample_rate=sample_rate, channels=channels, block_ms=1000)
    written = 0
    try:
        with soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels, subtype="PCM_16",
                                 format="WAV") as out:
            for block in blocks:
                out.write(block)
                written += len(block)
                if progress is not None:
                    progress(written / sample_rate)
    except (OSError, RuntimeError, soundfile.SoundFileError) as exc:
        raise CrowdsoundError(f"{path}: cannot write WAV: {exc}") from None
