"""A SoundFont synthesizer for the score: a small ctypes binding to libfluidsynth.

Why ctypes and not pyfluidsynth: we need a dozen C functions, offline rendering only (no
audio driver), and exact control over when events reach the synth; a binding this small is
easier to audit than a dependency. ctypes releases the GIL during each call, so one synth per thread
renders in parallel.

Rendering is made *restartable*: the same :class:`~consumers.music.types.Part` always gives
the same bytes, whatever was rendered before and on whichever instance, with reverb and chorus
off (our own reverb is linear, see ``reverb.py``). What that takes, measured on FluidSynth 2.3:

* ``fluid_synth_system_reset`` is not enough. A synth's voice pool keeps per-voice state
  (e.g. the amplitude a voice object last ramped to), so the same part rendered after a
  different one differed by up to 0.002 (on peaks of 0.1) near note starts. Each render therefore runs on a
  fresh ``fluid_synth_t`` (0.6 ms to create) that borrows the SoundFont loaded once by a
  loader synth (``fluid_synth_add_sfont``/``remove_sfont``): no sample data is reloaded.
* FluidSynth renders in internal blocks of 64 samples and applies events only at block
  starts, so events are placed on the nearest 64-sample boundary (at most 0.67 ms from their
  exact time) and every render is a whole number of blocks.
* The constructor renders a warm-up part once (the first render after loading was seen to
  differ from later ones with a reused synth; with fresh synths this is a cheap smoke test).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import threading
from collections.abc import Iterable
from typing import Any
from pathlib import Path

import numpy as np

from consumers.music.types import CHANNELS, SAMPLE_RATE, TICKS_PER_BEAT, Note, Part
from infra.errors import CrowdsoundError

__all__ = [
    "BLOCK", "DEFAULT_SOUNDFONTS", "SILENCE_DBFS", "SoundFontSynth", "SynthPerThread", "find_soundfont",
    "load_fluidsynth", "ticks_to_samples",
]

BLOCK = 64  # FluidSynth's internal block (FLUID_BUFSIZE): events take effect at these boundaries
DEFAULT_SOUNDFONTS: tuple[Path, ...] = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)
SILENCE_DBFS = -90.0  # a tail below this (one 16-bit LSB) for TAIL_QUIET_S is over
TAIL_QUIET_S = 0.1
DRUM_CHANNEL = CHANNELS["drums"]  # 9, GM percussion
DRUM_BANK = 128  # GM kits live in bank 128 of a GM SoundFont
_FLUID_OK = 0
# WARN, INFO, DBG: a fresh synth warns "no preset" for every channel until it gets the font;
# real problems come back as status codes and become our own errors. ERR stays on stderr.
_LOG_LEVELS_SILENCED = (2, 3, 4)


def ticks_to_samples(ticks: float, tempo_bpm: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Sample offset of ``ticks`` at ``tempo_bpm``; the one conversion used for notes and bar starts."""
    if tempo_bpm <= 0:
        raise ValueError(f"tempo must be > 0 BPM, got {tempo_bpm}")
    return round(ticks * 60 * sample_rate / (tempo_bpm * TICKS_PER_BEAT))


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The SoundFont to load: ``explicit``, else $CROWDSOUND_SOUNDFONT, else the Debian GM fonts."""
    if explicit is not None:
        candidates: tuple[Path, ...] = (Path(explicit),)
    elif os.environ.get("CROWDSOUND_SOUNDFONT"):
        candidates = (Path(os.environ["CROWDSOUND_SOUNDFONT"]),)
    else:
        candidates = DEFAULT_SOUNDFONTS
    for path in candidates:
        if path.is_file():
            return path
    # An explicit choice that does not exist is an error on its own: never fall back silently.
    raise CrowdsoundError(
        f"no SoundFont at {', '.join(str(p) for p in candidates)}: "
        "apt-get install fluid-soundfont-gm or set CROWDSOUND_SOUNDFONT")


def load_fluidsynth() -> ctypes.CDLL:
    """libfluidsynth with the prototypes we call (CDLL: the GIL is released during calls)."""
    names = [n for n in (ctypes.util.find_library("fluidsynth"), "libfluidsynth.so.3", "libfluidsynth.so.2") if n]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise CrowdsoundError("libfluidsynth not found: apt-get install libfluidsynth3")
    vp, c_int, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    prototypes: dict[str, tuple[object, list[object]]] = {
        "new_fluid_settings": (vp, []),
        "delete_fluid_settings": (None, [vp]),
        "fluid_settings_setint": (c_int, [vp, c_char_p, c_int]),
        "fluid_settings_setnum": (c_int, [vp, c_char_p, ctypes.c_double]),
        "new_fluid_synth": (vp, [vp]),
        "delete_fluid_synth": (None, [vp]),
        "fluid_synth_sfload": (c_int, [vp, c_char_p, c_int]),
        "fluid_synth_get_sfont_by_id": (vp, [vp, c_int]),
        "fluid_synth_add_sfont": (c_int, [vp, vp]),
        "fluid_synth_remove_sfont": (c_int, [vp, vp]),
        "fluid_synth_program_select": (c_int, [vp, c_int, c_int, c_int, c_int]),
        "fluid_synth_noteon": (c_int, [vp, c_int, c_int, c_int]),
        "fluid_synth_noteoff": (c_int, [vp, c_int, c_int]),
        "fluid_synth_cc": (c_int, [vp, c_int, c_int, c_int]),
        "fluid_synth_write_float": (c_int, [vp, c_int, vp, c_int, c_int, vp, c_int, c_int]),
        "fluid_set_log_function": (vp, [c_int, vp, vp]),
    }
    for fname, (restype, argtypes) in prototypes.items():
        try:
            func = getattr(lib, fname)
        except AttributeError as exc:
            raise CrowdsoundError(f"libfluidsynth lacks {fname}: apt-get install libfluidsynth3 (2.x)") from exc
        func.restype = restype
        func.argtypes = argtypes
    return lib


# Event kinds in the order they apply at one instant: controllers first, then note-offs before
# note-ons so a repeated key on the same tick sounds again. Programs are set before any event.
_CONTROL, _OFF, _ON = 1, 2, 3


class SoundFontSynth:
    """A loaded SoundFont and the settings to render parts with; use one per thread.

    Calls on one instance are serialized by a lock; parallelism comes from one instance per
    thread (ctypes releases the GIL while FluidSynth renders).
    """

    def __init__(self, soundfont: str | Path | None = None, *, gain: float = 0.2, polyphony: int = 256) -> None:
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = SAMPLE_RATE
        self._lib = load_fluidsynth()
        self._lock = threading.Lock()
        self._loader: int | None = None
        lib = self._lib
        for level in _LOG_LEVELS_SILENCED:
            lib.fluid_set_log_function(level, None, None)
        self._settings = lib.new_fluid_settings()
        if not self._settings:
            raise CrowdsoundError("libfluidsynth could not allocate its settings")
        for name, value in (("synth.sample-rate", float(SAMPLE_RATE)), ("synth.gain", float(gain))):
            self._check(lib.fluid_settings_setnum(self._settings, name.encode(), value), name)
        # No audio driver is ever created: we pull samples with fluid_synth_write_float.
        for name, ivalue in (("synth.cpu-cores", 1), ("synth.polyphony", polyphony),
                             ("synth.reverb.active", 0), ("synth.chorus.active", 0),
                             ("synth.audio-channels", 1), ("synth.lock-memory", 0),
                             ("synth.dynamic-sample-loading", 0)):
            self._check(lib.fluid_settings_setint(self._settings, name.encode(), ivalue), name)
        self._loader = lib.new_fluid_synth(self._settings)
        if not self._loader:
            raise CrowdsoundError("libfluidsynth could not create a synth (sample rate 48000, no driver)")
        sfont_id = lib.fluid_synth_sfload(self._loader, str(self.soundfont).encode(), 1)
        self._sfont = lib.fluid_synth_get_sfont_by_id(self._loader, sfont_id) if sfont_id >= 0 else None
        if not self._sfont:
            raise CrowdsoundError(f"libfluidsynth could not load the SoundFont {self.soundfont}")
        self.render_part(_WARM_UP, tempo_bpm=120.0)

    @staticmethod
    def _check(status: int, name: str) -> None:
        if status != _FLUID_OK:
            raise CrowdsoundError(f"libfluidsynth rejected the setting {name}")

    def close(self) -> None:
        """Free the SoundFont and settings (idempotent); the object is unusable afterwards."""
        with self._lock:
            if self._loader:
                self._lib.delete_fluid_synth(self._loader)  # owns the SoundFont
                self._loader = None
            if self._settings:
                self._lib.delete_fluid_settings(self._settings)
                self._settings = None

    def __enter__(self) -> SoundFontSynth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def render_part(self, part: Part, *, tempo_bpm: float, tail_max_s: float = 4.0) -> np.ndarray:
        """The dry audio of ``part`` from its tick 0: float32 (n, 2), n a multiple of 64.

        Renders until the last note-off (at least the part's length), then the release tail
        until it stays below SILENCE_DBFS for 100 ms or ``tail_max_s`` has passed. Silence
        after the last audible block is trimmed, but never below the part's length (a silent
        part gives zeros as long as the bar).
        """
        events = _events(part, tempo_bpm)
        end_of_notes = max((e[0] for e in events), default=0)
        body = max(end_of_notes, _to_block(ticks_to_samples(part.length_ticks, tempo_bpm)))
        if tail_max_s < 0:
            raise ValueError(f"tail_max_s must be >= 0, got {tail_max_s}")
        tail_max = _to_block(int(tail_max_s * SAMPLE_RATE))
        out = np.zeros((body + tail_max, 2), dtype=np.float32)
        with self._lock:
            if not self._loader:
                raise CrowdsoundError("this SoundFontSynth is closed")
            synth = self._lib.new_fluid_synth(self._settings)
            if not synth:
                raise CrowdsoundError("libfluidsynth could not create a synth")
            try:
                end = self._render(synth, part, events, out, body)
            finally:
                self._lib.fluid_synth_remove_sfont(synth, self._sfont)  # borrowed: not freed with synth
                self._lib.delete_fluid_synth(synth)
        return out[:end]

    def _render(self, synth: int, part: Part, events: list[tuple[int, int, int, int, int]],
                out: np.ndarray, body: int) -> int:
        lib = self._lib
        sfont_id = lib.fluid_synth_add_sfont(synth, self._sfont)
        if sfont_id < 0:
            raise CrowdsoundError(f"libfluidsynth could not attach the SoundFont {self.soundfont}")
        for channel, (bank, program) in sorted(part.programs.items()):
            self._select(synth, sfont_id, channel, bank, program)
        pos = 0
        for at, kind, channel, a, b in events:
            if at > pos:
                self._write(synth, out, pos, at)
                pos = at
            if kind == _ON:
                lib.fluid_synth_noteon(synth, channel, a, b)
            elif kind == _OFF:
                lib.fluid_synth_noteoff(synth, channel, a)
            else:
                lib.fluid_synth_cc(synth, channel, a, b)
        self._write(synth, out, pos, body)
        return self._render_tail(synth, out, body, len(out))

    def _select(self, synth: int, sfont_id: int, channel: int, bank: int, program: int) -> None:
        if channel == DRUM_CHANNEL:
            bank = DRUM_BANK
        # A kit or variation the font lacks falls back to the standard bank, then to program 0.
        fallback_bank = DRUM_BANK if bank == DRUM_BANK else 0
        for b, p in ((bank, program), (fallback_bank, program), (fallback_bank, 0)):
            if self._lib.fluid_synth_program_select(synth, channel, sfont_id, b, p) == _FLUID_OK:
                return
        raise CrowdsoundError(f"SoundFont {self.soundfont} has no preset {bank}:{program} for channel {channel}")

    def _write(self, synth: int, out: np.ndarray, start: int, stop: int) -> None:
        if stop <= start:
            return
        # Interleaved straight into the (n, 2) array: left at even, right at odd floats.
        base = out.ctypes.data + start * 2 * out.itemsize
        self._lib.fluid_synth_write_float(synth, stop - start, base, 0, 2, base, 1, 2)

    def _render_tail(self, synth: int, out: np.ndarray, start: int, limit: int) -> int:
        """Render the release tail in 100 ms steps; return where the audio ends (block-aligned)."""
        threshold = 10 ** (SILENCE_DBFS / 20)
        step = _to_block(int(TAIL_QUIET_S * SAMPLE_RATE))
        pos = start
        while pos < limit:
            stop = min(limit, pos + step)
            self._write(synth, out, pos, stop)
            pos = stop
            if pos - start >= step and not np.any(np.abs(out[pos - step:pos]) >= threshold):
                break
        loud = np.flatnonzero(np.any(np.abs(out[:pos]) >= threshold, axis=1))
        return max(start, 0 if len(loud) == 0 else _to_block(int(loud[-1]) + 1))


class SynthPerThread:
    """A :class:`SoundFontSynth` for each thread that renders: what a renderer holds when
    several threads render matches at once (``crowdsound composer --render-threads``).

    :meth:`render_part` runs on the calling thread's own synth (loaded on its first call), so
    threads never wait for each other's lock; the bytes are the same whichever synth renders
    a part (see the module's notes), so the output does not depend on the threads.
    """

    def __init__(self, soundfont: str | Path | None = None, **options: Any) -> None:
        self._soundfont = soundfont
        self._options = options
        self._local = threading.local()
        self._synths: list[SoundFontSynth] = []
        self._guard = threading.Lock()
        first = self._own()  # a missing SoundFont is an error now, not in a render thread
        self.soundfont, self.sample_rate = first.soundfont, first.sample_rate

    def _own(self) -> SoundFontSynth:
        synth = getattr(self._local, "synth", None)
        if synth is None:
            synth = self._local.synth = SoundFontSynth(self._soundfont, **self._options)
            with self._guard:
                self._synths.append(synth)
        return synth

    def render_part(self, part: Part, *, tempo_bpm: float, tail_max_s: float = 4.0) -> np.ndarray:
        """:meth:`SoundFontSynth.render_part` on this thread's synth."""
        return self._own().render_part(part, tempo_bpm=tempo_bpm, tail_max_s=tail_max_s)

    def close(self) -> None:
        with self._guard:
            for synth in self._synths:
                synth.close()
            self._synths.clear()


def _to_block(samples: int) -> int:
    """Round up to FluidSynth's block, so every render ends on a block boundary."""
    return -(-samples // BLOCK) * BLOCK


def _nearest_block(samples: int) -> int:
    return int(math.floor(samples / BLOCK + 0.5)) * BLOCK


def _events(part: Part, tempo_bpm: float) -> list[tuple[int, int, int, int, int]]:
    """(sample, kind, channel, a, b) in the order they apply, each on a 64-sample boundary."""
    events: list[tuple[int, int, int, int, int]] = []
    for tick, channel, controller, value in part.controls:
        if not (tick >= 0 and 0 <= channel < 16 and 0 <= controller < 128 and 0 <= value < 128):
            raise ValueError(f"control change outside MIDI ranges: {(tick, channel, controller, value)}")
        events.append((_nearest_block(ticks_to_samples(tick, tempo_bpm)), _CONTROL, channel, controller, value))
    for note in _valid(part.notes):
        on = _nearest_block(ticks_to_samples(note.tick, tempo_bpm))
        off = max(on + BLOCK, _nearest_block(ticks_to_samples(note.tick + note.duration_ticks, tempo_bpm)))
        events.append((on, _ON, note.channel, note.pitch, note.velocity))
        events.append((off, _OFF, note.channel, note.pitch, 0))
    events.sort()
    return events


def _valid(notes: Iterable[Note]) -> Iterable[Note]:
    for note in notes:
        if not (0 <= note.channel < 16 and 0 <= note.pitch < 128 and 1 <= note.velocity < 128
                and note.duration_ticks > 0 and note.tick >= 0):
            raise ValueError(f"note outside MIDI ranges: {note}")
        yield note


# A chord on a pad, a bass note and a drum hit: touches the code paths a real part does.
_WARM_UP = Part(
    notes=(Note(0, 240, 0, 60, 80), Note(0, 240, 0, 64, 80), Note(0, 240, 1, 36, 90), Note(0, 120, 9, 36, 100)),
    programs={0: (0, 89), 1: (0, 33), 9: (128, 0)},
    length_ticks=TICKS_PER_BEAT,
)
