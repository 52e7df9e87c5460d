"""Benchmark of the music renderer (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_render.py [--bars 32] [--seconds 3]

Prints how many seconds of music are rendered per wall second (x real time) for a typical
bar (the test score's bars, 120 BPM, 2 s each) at low intensity (pad chord and bass, 5
notes) and high intensity (pad, bass, GM drums, strings, brass: 26 notes), with and without
the convolution reverb; the mastering alone; and the whole pipeline of one match (schedule
bar by bar, pull a beat at a time, mastered int16), with the number of matches of real-time
music one core sustains (music seconds per CPU second, single thread).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from consumers.music.types import SAMPLE_RATE  # noqa: E402
from consumers.render.mastering import Master  # noqa: E402
from consumers.render.renderer import MusicRenderer  # noqa: E402
from consumers.render.reverb import apply_reverb  # noqa: E402
from consumers.render.synth import SoundFontSynth  # noqa: E402
from tests.test_render import BAR, TEMPO, bar_part, intensity  # noqa: E402

BAR_S = BAR / SAMPLE_RATE


def _rate(fn: Callable[[], object], music_s: float, seconds: float) -> tuple[float, float]:
    """Call ``fn`` for about ``seconds``; return (x real time by wall clock, by CPU clock)."""
    fn()  # warm-up (caches, first allocation)
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        fn()
        calls += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return calls * music_s / wall, calls * music_s / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=32, help="bars of the whole-pipeline run")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each bar measurement")
    args = parser.parse_args()

    t0 = time.perf_counter()
    synth = SoundFontSynth()
    print(f"SoundFont {synth.soundfont.name} loaded in {time.perf_counter() - t0:.2f} s (once per thread)\n")

    print(f"one bar ({BAR_S:.0f} s of music at {TEMPO:.0f} BPM; rendered with its release tail)")
    print(f"{'intensity':<10} {'notes':>6} {'reverb':>7} {'x real time':>12} {'ms per bar':>11}")
    for name, level in (("low", 0.3), ("high", 0.95)):
        part = bar_part(5, level)
        for reverb in (False, True):
            def render(part=part, reverb=reverb) -> np.ndarray:
                dry = synth.render_part(part, tempo_bpm=TEMPO)
                return apply_reverb(dry) if reverb else dry
            wall_x, _ = _rate(render, BAR_S, args.seconds)
            print(f"{name:<10} {len(part.notes):>6} {'yes' if reverb else 'no':>7} {wall_x:>12.0f} "
                  f"{1000 * BAR_S / wall_x:>11.1f}")

    block = (0.1 * np.random.default_rng(0).standard_normal((SAMPLE_RATE // 2, 2))).astype(np.float32)
    master = Master()
    wall_x, _ = _rate(lambda: master.process(block), 0.5, args.seconds)
    print(f"\nmastering alone (0.5 s blocks): {wall_x:.0f} x real time")

    beat = SAMPLE_RATE // 2
    renderer = MusicRenderer(synth)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for bar in range(args.bars):
        renderer.schedule(bar * BAR, bar_part(bar, intensity(bar * 64 // args.bars)), TEMPO)
        while renderer.cursor < bar * BAR:
            renderer.pull(beat)
    while renderer.cursor < args.bars * BAR:
        renderer.pull(beat)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    music = args.bars * BAR_S
    print(f"\nwhole pipeline, {args.bars} bars ({music:.0f} s, the test score's intensity arc), "
          f"synth + reverb + mix + mastering, pulled a beat at a time:")
    print(f"  {music / wall:.0f} x real time by wall clock, {music / cpu:.0f} x by CPU time "
          f"-> one core sustains about {int(music / cpu)} matches of real-time music "
          f"({100 * cpu / music:.2f} % of a core per match)")


if __name__ == "__main__":
    main()
