"""Benchmark of the synthetic stadium (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_stadium.py [--minutes 3] [--full] [--rate 48000]

Prints

1. render speed, as multiples of real time on one core: the first ``--minutes`` of
   demo.toml and of full_match.toml, mono and stereo, and what that means for the whole
   full match (rendered for real with ``--full``), plus the grain bank's build time;
2. a side-by-side table of spectral and dynamic figures for the real cheering recording
   in /work/shared/data (CC0) against the synthetic goal roar, murmur, boos and chant:
   RMS level, spectral centroid, octave-band levels (dB re. the loudest band), their mean
   distance from the real cheer's, the standard deviation of the 50 ms level, and how
   much the 10 ms level moves at 0.1-1, 1-4 and 4-16 Hz.
"""

from __future__ import annotations

import os

# One core: the renderer is single-threaded, and so must be anything numpy calls.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from producers.stadium import load_script, render_stadium  # noqa: E402
from producers.stadium import measure  # noqa: E402
from producers.stadium.chants import chant_bank  # noqa: E402
from producers.stadium.script import parse_script  # noqa: E402
from producers.stadium.voices import grain_bank  # noqa: E402

SCRIPTS = REPO / "producers" / "stadium" / "scripts"
REAL = Path("/work/shared/data/crowd-cheering-freesound-365132-cc0.wav")

# Moments spaced out so each reaction can be measured on its own (pre-match 0:10, so
# first-half time t is audio time t + 10 s).
COMPARISON = """
[match]
id = "bench"
home = "Arsenal"
away = "Chelsea"
seed = 7
home_share = 0.75
[periods]
pre_match = "0:10"
first_half = "2:40"
[[moments]]
at = "0:40"
kind = "goal"
side = "home"
[[moments]]
at = "1:20"
kind = "boos"
side = "home"
duration = "0:12"
[[moments]]
at = "1:50"
kind = "chant"
side = "home"
tempo = 120
duration = "0:24"
"""
# (label, start s, end s) of each synthetic window; the roar window matches the length of
# the real recording's middle (its first and last 1.5 s fade in and out).
WINDOWS = (("synthetic roar", 50.5, 60.5), ("synthetic murmur", 30.0, 40.0), ("synthetic boos", 92.0, 101.0),
           ("synthetic chant", 124.0, 144.0))


def speed(script_path: Path, *, seconds: float, rate: int, channels: int) -> float:
    """Multiples of real time for the first ``seconds`` of a script: everything counted
    (room, chants' voices) except the grain bank, which is built once per seed."""
    script = load_script(script_path)
    chant_bank.cache_clear()
    end_ms = int(min(seconds * 1000, script.duration_ms))
    start = time.process_time()
    samples = sum(len(b) for b in render_stadium(script, sample_rate=rate, channels=channels, block_ms=1000,
                                                  end_ms=end_ms))
    return samples / rate / (time.process_time() - start)


def figures(audio: np.ndarray, rate: int, reference_bands: np.ndarray | None) -> dict[str, object]:
    bands = measure.band_levels_db(audio, rate)
    usable = slice(1, 8)  # 125 Hz - 8 kHz: where both recordings have real content
    return {
        "rms": measure.rms_dbfs(audio),
        "centroid": measure.spectral_centroid_hz(audio, rate),
        "bands": bands,
        "distance": float(np.mean(np.abs(bands[usable] - reference_bands[usable]))) if reference_bands is not None else 0.0,
        "std": measure.loudness_std_db(audio, rate),
        "modulation": measure.modulation_db(audio, rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of each script to time (default 3)")
    parser.add_argument("--full", action="store_true", help="also render the whole full match (about 2 h of audio)")
    parser.add_argument("--rate", type=int, default=48_000, help="sample rate, Hz (default 48000)")
    args = parser.parse_args()
    rate = args.rate

    print(f"== render speed, {rate} Hz, one core (CPU time) ==")
    for seed in sorted({load_script(SCRIPTS / n).seed for n in ("demo.toml", "full_match.toml")} | {7}):
        start = time.process_time()
        grain_bank(seed, rate)
        print(f"grain bank, seed {seed}: built in {time.process_time() - start:.2f} s")
    full = load_script(SCRIPTS / "full_match.toml")
    for name in ("demo.toml", "full_match.toml"):
        for channels in (1, 2):
            x = speed(SCRIPTS / name, seconds=args.minutes * 60, rate=rate, channels=channels)
            line = f"{name:16s} {'mono  ' if channels == 1 else 'stereo'} first {args.minutes:g} min: {x:6.1f}x real time"
            if name == "full_match.toml":
                line += f"  -> whole match ({full.duration_ms / 60000:.0f} min) in ~{full.duration_ms / 1000 / x / 60:.1f} min"
            print(line)
    if args.full:
        start = time.process_time()
        samples = sum(len(b) for b in render_stadium(full, sample_rate=rate, block_ms=1000))
        spent = time.process_time() - start
        print(f"full_match.toml mono, all {samples / rate / 60:.0f} min: {spent:.0f} s CPU, "
              f"{samples / rate / spent:.1f}x real time")
    print(f"peak memory (max RSS) so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    print("\n== real cheering vs synthetic stadium ==")
    real, real_rate = soundfile.read(REAL, dtype="float64")
    synthetic = np.concatenate(list(render_stadium(parse_script(COMPARISON), sample_rate=rate)))
    real_mid = real[int(1.5 * real_rate):int(11.5 * real_rate)]
    reference = measure.band_levels_db(real_mid, real_rate)
    rows = [("real cheer (all 13 s)", figures(real, real_rate, reference)),
            ("real cheer (1.5-11.5 s)", figures(real_mid, real_rate, reference))]
    for label, lo, hi in WINDOWS:
        rows.append((label, figures(synthetic[int(lo * rate):int(hi * rate)], rate, reference)))
    octaves = " ".join(f"{(f'{c // 1000}k' if c >= 1000 else str(c)):>4s}" for c in measure.OCTAVES_HZ)
    print(f"{'':24s} {'RMS':>6s} {'centr.':>6s} | {octaves} | {'dist':>4s} | {'std':>4s} | "
          f"{'mod 0.1-1':>9s} {'1-4':>5s} {'4-16':>5s}")
    print(f"{'':24s} {'dBFS':>6s} {'Hz':>6s} | {'octave band level, dB re. loudest band':^44s} | {'dB':>4s} | "
          f"{'dB':>4s} | {'dB':>9s} {'dB':>5s} {'dB':>5s}")
    for label, f in rows:
        bands = " ".join(f"{b:4.0f}" if np.isfinite(b) else "   -" for b in f["bands"])
        mod = f["modulation"]
        print(f"{label:24s} {f['rms']:6.1f} {f['centroid']:6.0f} | {bands} | {f['distance']:4.1f} | {f['std']:4.1f} | "
              f"{mod[0]:9.2f} {mod[1]:5.2f} {mod[2]:5.2f}")
    print("\ndist: mean absolute difference of the 125 Hz - 8 kHz octave levels from the real cheer's middle.")
    print("std: standard deviation of the 50 ms RMS level. mod: RMS of the 10 ms level curve in each band.")


if __name__ == "__main__":
    main()
