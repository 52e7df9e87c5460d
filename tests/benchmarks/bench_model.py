"""Benchmark of the crowd emotion model (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_model.py [--model PATH] [--seconds 3]

Prints, for batch sizes 1 and 64, the latency of one ``EmotionModel.predict`` call, the
time per window and windows per second (one onnxruntime session, one thread, as the
worker runs it), plus the raw ``session.run`` time without the Python wrapping, the
model's load time and the cost of the features that feed it (CrowdAnalyzer over 100 ms
frames), so the model's share of a window's work is visible.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from schemas.clock import MatchClock, Period  # noqa: E402
from streams.emotion import INPUT, OUTPUTS, EmotionModel  # noqa: E402
from streams.features import FEATURE_NAMES  # noqa: E402
from streams.windows import CrowdAnalyzer  # noqa: E402


def _time(fn, seconds: float) -> tuple[int, list[float]]:
    """Call ``fn`` repeatedly for about ``seconds``; return calls and per-call durations."""
    for _ in range(20):  # warm-up
        fn()
    durations = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - t0)
    return len(durations), durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="an .onnx model (default: the shipped one)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    model = EmotionModel.load(args.model)
    load_ms = 1000 * (time.perf_counter() - t0)
    print(f"model {model.version} ({model.path}), loaded in {load_ms:.1f} ms; 1 intra-op thread, sequential")
    rng = np.random.default_rng(0)
    print()
    print(f"{'batch':>5} {'call p50 ms':>12} {'call p99 ms':>12} {'per window us':>14} {'windows/s':>11}  what")
    for batch in (1, 64):
        features = rng.normal(0.0, 3.0, (batch, len(FEATURE_NAMES))).astype(np.float32)
        for label, fn in (
            ("EmotionModel.predict", lambda f=features: model.predict(f)),
            ("session.run only", lambda f=features: model._session.run(list(OUTPUTS), {INPUT: f})),
        ):
            calls, durations = _time(fn, args.seconds)
            p50, p99 = np.percentile(durations, [50, 99]) * 1000
            per_window_us = 1e6 * float(np.mean(durations)) / batch
            print(f"{batch:>5} {p50:>12.3f} {p99:>12.3f} {per_window_us:>14.1f} {1e6 / per_window_us:>11,.0f}  {label}")

    # The features that feed one window: 10 frames of 100 ms at 48 kHz (a 1 s hop).
    analyzer = CrowdAnalyzer()
    noise = (0.05 * rng.standard_normal(48_000 * 30)).astype(np.float64)
    frames = [noise[i:i + 4800] for i in range(0, len(noise), 4800)]
    t0 = time.perf_counter()
    windows = 0
    for i, frame in enumerate(frames):
        windows += len(analyzer.add_frame(MatchClock(Period.FIRST_HALF, i * 100), frame, 48_000))
    feature_ms = 1000 * (time.perf_counter() - t0) / max(windows, 1)
    print()
    print(f"features (CrowdAnalyzer, 10 frames of 100 ms per window): {feature_ms:.2f} ms per window "
          f"({1000 / feature_ms:,.0f} windows/s on one core)")


if __name__ == "__main__":
    main()
