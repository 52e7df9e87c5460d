"""Acoustic features of crowd audio, as pure numpy functions.

Two levels:

* per **frame** (one AudioFrame, ~100 ms): level, spectral shape (13 bands, 100 Hz to
  7.2 kHz), flux and an onset-strength envelope at 50 Hz (20 ms hops), whistle peakiness —
  all from the same 128 ms analysis windows;
* per **window** (default 3 s of frames): their summary, plus periodicity and tempo of
  chants and claps from the onset envelope of the last seconds.

Values that depend on microphones and gain (level, brightness) are turned into values
relative to the match's own running :class:`Baseline`, so venues are comparable; the shape is
relative to the window's own power, so a recording's gain changes nothing.
Everything is deterministic: the same frames in the same order give the same numbers, live
and in replay.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "ANALYSIS_MS",
    "FEATURE_NAMES",
    "ONSET_RATE_HZ",
    "SHAPE_BANDS",
    "WARM_S",
    "Baseline",
    "FrameAnalysis",
    "FrameFeatures",
    "FrameTail",
    "Timbre",
    "analysis_pieces",
    "analyze_frame",
    "analyze_pieces",
    "feature_vector",
    "tail_after",
    "tempo_from_onsets",
    "timbre",
    "window_summary",
]

ONSET_RATE_HZ = 50  # onset envelope: one value per 20 ms
_EPS = 1e-10
_SILENCE_DB = -120.0
PERIODIC = 0.2  # onset periodicity above which a chant or rhythmic clapping is heard
# Seconds of audio after which the baseline is trusted: until then, level and brightness
# relative to it count in proportion. A recording's first seconds (a clip, a fade-in) say
# nothing about how loud the venue usually is; a match has a warm baseline long before kick-off.
WARM_S = 20.0


@dataclass(frozen=True)
class FrameFeatures:
    """Features of one frame. Levels in dB (full-scale sine = -3 dBFS)."""

    rms_db: float  # the frame's level, dBFS
    band_db: tuple[float, ...]  # power in each SHAPE_BANDS band (100-7200 Hz), dB (absolute: see window_summary)
    flux: float  # mean positive log-spectral change between 20 ms hops
    whistle_db: float  # strongest 2-4 kHz spectral peak over the band's median, dB
    onsets: tuple[float, ...]  # onset strength per 20 ms hop


ONSET_WINDOW_S = 0.128  # long analysis windows: a crowd's syllables and claps, not its noise
ONSET_BANDS = np.geomspace(100.0, 8000.0, 41)  # 40 log-spaced bands for onset strength
# The spectral shape: 13 groups of 3 onset bands, 100 Hz to 7.2 kHz (0.47 octave each). Below
# 100 Hz lie wind, handling and traffic; above 7.2 kHz a 16 kHz broadcast feed or an MP3 has
# nothing. Inside, the shape is what tells a roar from a murmur whatever the gain: a crowd
# shouting harder puts its energy higher (600-2500 Hz), a murmur sits at 200-600 Hz.
SHAPE_GROUP = 3
SHAPE_BANDS: tuple[tuple[float, float], ...] = tuple(
    (float(ONSET_BANDS[i]), float(ONSET_BANDS[i + SHAPE_GROUP])) for i in range(0, 39, SHAPE_GROUP))
_SHAPE_OCT = np.log2(np.sqrt([low * high for low, high in SHAPE_BANDS]) / 1000.0)  # band centres, octaves re 1 kHz
# Vocal effort: shouting raises the first formant, moving a voice's energy from the region of
# its fundamental (bands around 160-320 Hz) up to 600-1200 Hz. The ratio of the two is the
# classic correlate of how hard people are shouting, and does not depend on gain.
_EFFORT_LOW = (1, 2, 3)
_EFFORT_HIGH = (5, 6, 7)


@dataclass(frozen=True)
class FrameTail:
    """What the next frame's onsets need of the audio before it: the last 128 ms of samples
    and the log band energies (dB) of the onset window that ends with them."""

    samples: np.ndarray
    bands_db: np.ndarray | None  # None: not known (computed from the samples when needed)


@dataclass(frozen=True)
class FrameAnalysis:
    """A frame's place in a chain of frames analysed ahead (:mod:`streams.offload`): valid
    for the frame that follows the tail with token ``after``; the tail it leaves gets the
    token ``token``. With :func:`analyze_pieces`'s result for it (``features`` of each of its
    pieces, and the new tail's ``bands_db``; the tail's samples follow from the frame:
    :func:`tail_after`) when it was computed elsewhere, else None."""

    after: int
    token: int
    features: tuple[FrameFeatures, ...] | None = None
    bands_db: np.ndarray | None = None


# Audio is analysed in pieces of at most 100 ms, whatever length the encoder's frames have: a
# one-second frame is ten pieces, with exactly the features ten 100 ms frames would have. So
# an encoder may send long frames (fewer records for Kafka and the worker to handle, see
# producers.encoder) and the windows, the model's input and replay stay the same.
ANALYSIS_MS = 100


def analysis_pieces(samples: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """``samples`` cut into consecutive pieces of ANALYSIS_MS (the last one holds the rest)."""
    piece = max(1, sample_rate * ANALYSIS_MS // 1000)
    if len(samples) <= piece:
        return [samples]
    return [samples[start:start + piece] for start in range(0, len(samples), piece)]


@dataclass(frozen=True)
class _Plan:
    """Everything about the analysis that depends only on the sample rate (computed once)."""

    hop: int
    size: int
    onset_window: np.ndarray  # Hann window of the 128 ms onset window
    onset_starts: np.ndarray  # first bin of each onset band (for np.add.reduceat)
    onset_bins: slice  # the bins that fall into an onset band
    onset_empty: np.ndarray  # onset bands without a bin (their energy is 0)
    whistle: slice  # 2-4 kHz, within onset_bins


@functools.lru_cache(maxsize=8)
def _plan(sample_rate: int) -> _Plan:
    hop = sample_rate // ONSET_RATE_HZ
    size = int(round(ONSET_WINDOW_S * sample_rate))
    onset_freqs = np.fft.rfftfreq(size, d=1 / sample_rate)
    # Bin b belongs to band j when ONSET_BANDS[j] <= f_b < ONSET_BANDS[j + 1]; bins are sorted,
    # so each band is a run of consecutive bins.
    edges = np.searchsorted(onset_freqs, ONSET_BANDS, side="left")
    starts = edges[:-1]
    empty = starts == edges[1:]
    first = int(edges[0])
    whistle = slice(int(np.searchsorted(onset_freqs, 2000.0)) - first,
                    int(np.searchsorted(onset_freqs, 4000.0, side="right")) - first)
    return _Plan(
        hop=hop, size=size, onset_window=np.hanning(size),
        onset_starts=np.minimum(starts, edges[-1] - 1) - edges[0], onset_bins=slice(first, int(edges[-1])),
        onset_empty=empty, whistle=whistle,
    )


def _band_power(plan: _Plan, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy of each onset band per row of ``windows`` (n, size) of raw audio, and the power
    spectrum of the bins in the onset bands (n, bins).

    Row by row the same numbers whatever the number of rows (FFT and reduceat work row by
    row; a matrix product would not), so live, replay and training agree to the last bit."""
    spectrum = np.fft.rfft(windows * plan.onset_window, axis=1)[:, plan.onset_bins]
    power = spectrum.real ** 2 + spectrum.imag ** 2
    bands = np.add.reduceat(power, plan.onset_starts, axis=1)
    bands[:, plan.onset_empty] = 0.0
    return bands, power


def _log_bands(plan: _Plan, windows: np.ndarray) -> np.ndarray:
    """Log energy (dB) of each onset band, per row of ``windows``."""
    return 10 * np.log10(_band_power(plan, windows)[0] + 1e-10)


def _history(plan: _Plan, tail: FrameTail | None) -> np.ndarray | None:
    """The previous 128 ms of audio, or None at the start of a stream (or for a tail of
    another length): the onset windows then start from silence."""
    return tail.samples if tail is not None and len(tail.samples) == plan.size else None


def _joined(plan: _Plan, samples: np.ndarray, tail: FrameTail | None) -> tuple[np.ndarray, bool]:
    """The previous 128 ms (zeros at the start of a stream: ``fresh``) and the frame's whole
    hops: the audio the frame's onset windows cover."""
    history = _history(plan, tail)
    hops = len(samples) // plan.hop
    return np.concatenate([np.zeros(plan.size) if history is None else history, samples[:hops * plan.hop]]), \
        history is None


def tail_after(samples: np.ndarray, sample_rate: int, tail: FrameTail | None) -> np.ndarray:
    """The samples of the tail :func:`analyze_pieces` returns for this frame (its last 128
    ms of audio), without analysing anything: cheap, for a caller that has the frame's
    features from elsewhere (:mod:`streams.offload`). Each piece's onset windows cover the
    tail before it and the piece's whole hops, so the tail is the last 128 ms of the previous
    tail followed by every piece's whole hops; only those samples are read (the worker calls
    this for every one-second frame its helper analysed)."""
    plan = _plan(sample_rate)
    need, parts = plan.size, []
    for piece in reversed(analysis_pieces(samples, sample_rate)):
        whole = piece[:len(piece) // plan.hop * plan.hop]
        if len(whole):
            parts.append(_as_audio(whole[-need:]))
            need -= len(parts[-1])
        if need == 0:
            break
    if need:
        history = _history(plan, tail)
        parts.append(np.zeros(need) if history is None else history[-need:])
    return np.concatenate(parts[::-1])


def _as_audio(samples: np.ndarray) -> np.ndarray:
    audio = np.asarray(samples, dtype=np.float64)
    if not np.isfinite(audio).all():
        audio = np.where(np.isfinite(audio), audio, 0.0)
    return audio


@dataclass(frozen=True)
class _Spectra:
    onsets: np.ndarray  # onset strength per hop
    tail: FrameTail
    band_db: tuple[float, ...]  # SHAPE_BANDS power, dB
    whistle_db: float


def _spectra(plan: _Plan, samples: np.ndarray, tail: FrameTail | None) -> _Spectra:
    """Onset strength per 20 ms hop of ``samples``, the frame's spectral shape and whistle
    peak, and the tail to pass to the next frame.

    Like librosa's onset strength: log band energies from long (128 ms) overlapping
    windows, one ending at each hop, and the mean positive change from one hop to the next.
    Long windows average out the random flicker of hundreds of voices, so the rhythm of a
    chant or of clapping stands out; they need the end of the previous frame (``tail``),
    whose last window's band energies are kept so that each window is analysed once. The
    same windows give the frame's spectral shape (their mean band power) and its whistle
    peak (7.8 Hz resolution: a fingers-in-mouth whistle is a narrow line).
    """
    hop, size = plan.hop, plan.size
    joined, fresh = _joined(plan, samples, tail)
    hops = (len(joined) - size) // hop
    known = None if fresh or tail is None else tail.bands_db
    if hops == 0:  # shorter than one hop: the shape of what there is
        bands, power = _band_power(plan, joined[None, -size:])
        previous = known if known is not None else 10 * np.log10(bands[0] + 1e-10)
        return _Spectra(np.zeros(0), FrameTail(joined[-size:].copy(), previous), *_shape(plan, bands, power))
    # Window k ends where hop k of the frame ends.
    windows = np.lib.stride_tricks.sliding_window_view(joined, size)[hop::hop]
    bands, power = _band_power(plan, windows)
    log_bands = 10 * np.log10(bands + 1e-10)
    previous = known if known is not None else _log_bands(plan, joined[None, :size])[0]
    onsets = np.maximum(0.0, np.diff(np.vstack([previous, log_bands]), axis=0)).mean(axis=1)
    if fresh:  # no past audio: the first frame of a stream has no onsets to speak of
        onsets[:] = 0.0
    return _Spectra(onsets, FrameTail(joined[-size:].copy(), log_bands[-1].copy()), *_shape(plan, bands, power))


def _shape(plan: _Plan, bands: np.ndarray, power: np.ndarray) -> tuple[tuple[float, ...], float]:
    mean_bands = np.add.reduce(bands, axis=0) / len(bands)
    grouped = np.add.reduceat(mean_bands[:len(SHAPE_BANDS) * SHAPE_GROUP], np.arange(0, len(SHAPE_BANDS) * SHAPE_GROUP,
                                                                                    SHAPE_GROUP))
    band_db = tuple((10 * np.log10(grouped + 1e-10)).tolist())
    band = np.add.reduce(power[:, plan.whistle], axis=0)
    if band.size:
        middle = np.partition(band, [(band.size - 1) // 2, band.size // 2])
        median = 0.5 * (float(middle[(band.size - 1) // 2]) + float(middle[band.size // 2]))
        whistle_db = 10 * math.log10((float(band.max()) + _EPS) / (median + _EPS))
    else:
        whistle_db = 0.0
    return band_db, whistle_db


def analyze_frame(samples: np.ndarray, sample_rate: int, *,
                  tail: FrameTail | None = None) -> tuple[FrameFeatures, FrameTail]:
    """Features of one frame of mono audio.

    Parameters
    ----------
    samples : np.ndarray, shape (n,)
        Float audio, full scale 1.0 (int16 callers divide by 32768).
    sample_rate : int
        Samples per second (16 kHz and up: the shape stops at 7.2 kHz).
    tail : FrameTail, optional
        What the previous call returned, so onsets are continuous across frames. None at
        the start of a stream.

    Returns
    -------
    (FrameFeatures, FrameTail)
        The features, and the tail to pass with the next frame.
    """
    plan = _plan(sample_rate)
    audio = _as_audio(samples)
    n = len(audio)
    rms = math.sqrt(float(np.add.reduce(audio * audio)) / n) if n else 0.0
    rms_db = max(_SILENCE_DB, 20 * math.log10(rms + _EPS))
    spectra = _spectra(plan, audio, tail)
    onset_list = spectra.onsets.tolist()
    features = FrameFeatures(
        rms_db=float(rms_db), band_db=spectra.band_db,
        flux=sum(onset_list) / len(onset_list) if onset_list else 0.0,
        whistle_db=spectra.whistle_db, onsets=tuple(onset_list),
    )
    return features, spectra.tail


def analyze_pieces(samples: np.ndarray, sample_rate: int, *,
                   tail: FrameTail | None = None) -> tuple[tuple[FrameFeatures, ...], FrameTail]:
    """:func:`analyze_frame` of each of the frame's :func:`analysis_pieces`, in order: their
    features, and the tail after the last one."""
    features = []
    for piece in analysis_pieces(samples, sample_rate):
        piece_features, tail = analyze_frame(piece, sample_rate, tail=tail)
        features.append(piece_features)
    assert tail is not None  # (there is always a piece)
    return tuple(features), tail


def tempo_from_onsets(envelope: np.ndarray, *, rate_hz: float = ONSET_RATE_HZ,
                      bpm_range: tuple[float, float] = (60.0, 200.0)) -> tuple[float | None, float]:
    """Tempo and strength of the periodicity in an onset-strength envelope.

    Parameters
    ----------
    envelope : np.ndarray, shape (n,)
        Onset strength sampled at ``rate_hz`` (a few seconds: 4-8 s works best).

    Returns
    -------
    (bpm or None, strength in [0, 1])
        ``strength`` is the normalised autocorrelation at the best lag (a chant or
        rhythmic clapping gives > 0.2, crowd noise and roars < 0.15); bpm is None when there is
        not enough signal to tell.
    """
    env = np.asarray(envelope, dtype=np.float64)
    low_lag = int(np.floor(rate_hz * 60 / bpm_range[1]))
    high_lag = int(np.ceil(rate_hz * 60 / bpm_range[0]))
    if len(env) < 2 * high_lag:
        return None, 0.0
    env = env - env.mean()
    energy = float(np.dot(env, env))
    if energy <= _EPS:
        return None, 0.0
    lags = np.arange(low_lag, high_lag + 1)
    corr = np.array([np.dot(env[:-lag], env[lag:]) / energy * len(env) / (len(env) - lag) for lag in lags])
    # Prefer the beat over its multiples: a peak at 2 or 3 times the lag is the same
    # rhythm, and a non-integer lag (180 bpm = 16.7 hops) correlates best at a multiple.
    best = int(np.argmax(corr))
    for divisor in (3, 2):
        target = lags[best] / divisor
        if target < low_lag:
            continue
        near = [i for i in range(len(lags)) if abs(lags[i] - target) <= 1.0]
        if near:
            candidate = max(near, key=lambda i: corr[i])
            if corr[candidate] > 0.6 * corr[best]:
                best = candidate
                break
    strength = float(np.clip(corr[best], 0.0, 1.0))
    # Parabolic interpolation between lags for a finer tempo.
    lag = float(lags[best])
    if 0 < best < len(corr) - 1:
        a, b, c = corr[best - 1], corr[best], corr[best + 1]
        denominator = a - 2 * b + c
        if abs(denominator) > _EPS:
            lag += 0.5 * (a - c) / denominator
    return 60.0 * rate_hz / lag, strength


@dataclass(frozen=True)
class Baseline:
    """The match's running reference: level, brightness, vocal effort and spread of the crowd
    when it is not reacting.

    It follows the *floor* of the crowd: it falls quickly when the crowd gets quieter and
    rises slowly when it gets louder, so a long celebration does not become the new normal;
    the timbre follows at the level's pace. ``heard_s`` is how much audio it has learned
    from: a baseline that has heard less than :data:`WARM_S` is not trusted fully
    (:func:`feature_vector`).
    """

    loudness_db: float | None = None
    centroid_hz: float | None = None
    windows: int = 0
    heard_s: float = 0.0
    effort_db: float | None = None
    spread_oct: float | None = None
    band_db: tuple[float, ...] | None = None  # the usual spectral shape (SHAPE_BANDS, dB re their sum)

    def __post_init__(self) -> None:
        if self.band_db is not None and not isinstance(self.band_db, tuple):  # a checkpoint's JSON list
            object.__setattr__(self, "band_db", tuple(float(v) for v in self.band_db))

    @property
    def warmth(self) -> float:
        """0 (has heard nothing) .. 1 (has heard :data:`WARM_S` or more)."""
        return min(1.0, self.heard_s / WARM_S)

    def update(self, loudness_db: float, centroid_hz: float, *, hop_s: float = 1.0,
               timbre: Timbre | None = None) -> Baseline:
        """The baseline after one more hop of audio at ``loudness_db`` (dBFS) and brightness
        ``centroid_hz``, with the hop's ``timbre`` (effort and spread) when known."""
        effort = None if timbre is None else timbre.effort_db
        spread = None if timbre is None else timbre.spread_oct
        shape = None if timbre is None else timbre.band_db
        if self.loudness_db is None or self.centroid_hz is None:
            return Baseline(loudness_db, centroid_hz, 1, hop_s, effort, spread, shape)
        up, down = hop_s / 120.0, hop_s / 15.0  # time constants: 2 min rising, 15 s falling
        rate = up if loudness_db > self.loudness_db else down
        # Early on the baseline is still learning the venue: move faster.
        rate = max(rate, 1.0 / (self.windows + 1)) if self.windows < 10 else rate

        def follow(old: float | None, new: float | None) -> float | None:
            return new if old is None else old if new is None else old + rate * (new - old)

        band_db = shape if self.band_db is None else self.band_db if shape is None else tuple(
            map(follow, self.band_db, shape))
        return replace(self, loudness_db=follow(self.loudness_db, loudness_db),
                       centroid_hz=follow(self.centroid_hz, centroid_hz), windows=self.windows + 1,
                       heard_s=self.heard_s + hop_s, effort_db=follow(self.effort_db, effort),
                       spread_oct=follow(self.spread_oct, spread), band_db=band_db)


@dataclass(frozen=True)
class WindowSummary:
    """Absolute features of one window (before the baseline makes them relative)."""

    loudness_db: float  # mean power of the window's frames, dBFS
    loudness_std_db: float  # frame-to-frame fluctuation
    loudness_rise_db: float  # last third minus first third
    band_db: tuple[float, ...]  # SHAPE_BANDS power relative to their sum, dB: the spectral shape
    brightness_oct: float  # power-weighted mean of the SHAPE_BANDS centres, octaves above 1 kHz
    spread_oct: float  # power-weighted spread of the SHAPE_BANDS centres around it, octaves
    effort_db: float  # power at 600-1200 Hz over power at 160-320 Hz (shape bands), dB
    flux: float
    onset_rate_hz: float
    whistle_db: float
    tempo_bpm: float | None
    periodicity: float

    @property
    def centroid_hz(self) -> float:
        """The brightness as a frequency (Hz): what the baseline keeps."""
        return 1000.0 * 2.0 ** self.brightness_oct


def _mean_band_power(frames: Sequence[FrameFeatures]) -> np.ndarray:
    return np.mean(10 ** (np.array([f.band_db for f in frames]) / 10), axis=0) + _EPS


@dataclass(frozen=True)
class Timbre:
    """How some frames sound, whatever the gain: brightness (power-weighted mean of the
    SHAPE_BANDS centres on a log-frequency scale, octaves above 1 kHz), spread around it
    (octaves) and vocal effort (power at 600-1200 Hz over power at 160-320 Hz, dB)."""

    brightness_oct: float
    spread_oct: float
    effort_db: float
    band_db: tuple[float, ...]  # SHAPE_BANDS power relative to their sum, dB

    @property
    def centroid_hz(self) -> float:
        """The brightness as a frequency (Hz): what the baseline keeps."""
        return 1000.0 * 2.0 ** self.brightness_oct


def timbre(frames: Sequence[FrameFeatures]) -> Timbre:
    """The :class:`Timbre` of ``frames`` (their band powers averaged)."""
    return _timbre(_mean_band_power(frames))


def _timbre(power: np.ndarray) -> Timbre:
    total = float(power.sum())
    brightness = float(np.dot(power, _SHAPE_OCT) / total)
    return Timbre(
        brightness_oct=brightness,
        # A shouting crowd's energy gathers around its raised first formant (0.6-1.2 kHz); a
        # murmur spreads over the whole voice range: the spread tells them apart at any EQ.
        spread_oct=math.sqrt(max(0.0, float(np.dot(power, (_SHAPE_OCT - brightness) ** 2) / total))),
        effort_db=float(10 * np.log10(power[list(_EFFORT_HIGH)].sum() / power[list(_EFFORT_LOW)].sum())),
        band_db=tuple((10 * np.log10(power / total)).tolist()),
    )


def window_summary(frames: Sequence[FrameFeatures], onset_history: np.ndarray) -> WindowSummary:
    """Summarise a window's frames; ``onset_history`` is the onset envelope of the last
    seconds up to the window's end (for tempo and periodicity)."""
    if not frames:
        raise ValueError("a window needs at least one frame")
    levels = np.array([f.rms_db for f in frames])
    power_db = float(10 * np.log10(np.mean(10 ** (levels / 10)) + _EPS))
    third = max(1, len(levels) // 3)
    onsets = np.concatenate([np.array(f.onsets) for f in frames])
    threshold = onsets.mean() + 1.5 * onsets.std() if len(onsets) else 0.0
    peaks = (onsets[1:-1] > threshold) & (onsets[1:-1] >= onsets[:-2]) & (onsets[1:-1] > onsets[2:])
    tempo, periodicity = tempo_from_onsets(onset_history)
    heard = _timbre(_mean_band_power(frames))
    return WindowSummary(
        loudness_db=power_db,
        loudness_std_db=float(levels.std()),
        loudness_rise_db=float(levels[-third:].mean() - levels[:third].mean()),
        band_db=heard.band_db,
        brightness_oct=heard.brightness_oct, spread_oct=heard.spread_oct, effort_db=heard.effort_db,
        flux=float(np.mean([f.flux for f in frames])),
        onset_rate_hz=float(peaks.sum() / (len(onsets) / ONSET_RATE_HZ)) if len(onsets) else 0.0,
        whistle_db=float(np.max([f.whistle_db for f in frames])),
        tempo_bpm=tempo if periodicity >= PERIODIC else None,
        periodicity=periodicity,
    )


FEATURE_NAMES: tuple[str, ...] = (
    "loudness_rel_db", "loudness_std_db", "loudness_rise_db",
    *(f"band_{int(round(math.sqrt(low * high)))}hz_db" for low, high in SHAPE_BANDS),
    "brightness_oct", "brightness_rel_oct", "spread_oct", "spread_rel_oct", "effort_db", "effort_rel_db",
    "flux", "onset_rate_hz", "whistle_db", "periodicity", "warmth",
    *(f"band_{int(round(math.sqrt(low * high)))}hz_rel_db" for low, high in SHAPE_BANDS),
)


def feature_vector(summary: WindowSummary, baseline: Baseline) -> np.ndarray:
    """The model's input: the window relative to the match's baseline, float32 of
    shape (len(FEATURE_NAMES),).

    Nothing in it depends on the microphone's gain: level counts only against the match's
    own baseline, the shape is relative to the window's own power, and flux, onsets,
    whistles and periodicity are ratios. Level and brightness relative to the baseline are
    scaled by its warmth: 0 in a recording's first window, in full once it has heard
    :data:`WARM_S` — so a clip analysed alone is judged by its timbre, not by how loud its
    last seconds are next to its first."""
    reference_db = summary.loudness_db if baseline.loudness_db is None else baseline.loudness_db
    reference_oct = summary.brightness_oct if baseline.centroid_hz is None else \
        math.log2(max(baseline.centroid_hz, 1.0) / 1000.0)
    warmth = baseline.warmth

    def relative(value: float, reference: float | None) -> float:
        return 0.0 if reference is None else warmth * (value - reference)

    values = [
        warmth * (summary.loudness_db - reference_db), summary.loudness_std_db, summary.loudness_rise_db,
        *summary.band_db,
        summary.brightness_oct, warmth * (summary.brightness_oct - reference_oct),
        summary.spread_oct, relative(summary.spread_oct, baseline.spread_oct),
        summary.effort_db, relative(summary.effort_db, baseline.effort_db),
        summary.flux, summary.onset_rate_hz, summary.whistle_db, summary.periodicity, warmth,
        *(relative(value, usual)
          for value, usual in zip(summary.band_db, baseline.band_db or (None,) * len(summary.band_db), strict=True)),
    ]
    return np.asarray(values, dtype=np.float32)
