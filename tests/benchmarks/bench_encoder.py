"""Benchmark of the venue encoder against the local broker (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_encoder.py [--minutes 5] [--live-seconds 30]

Prints frames/s and MB/s of `crowdsound encoder --fast` (PCM and FLAC payloads) and the CPU
one live 48 kHz mono match costs (CPU seconds per second of audio, i.e. share of one core).
Starts the repository's broker on 127.0.0.1:9092 if it is not running (KAFKA_BOOTSTRAP_SERVERS
to use another) and writes to topics under a fresh prefix.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from infra.broker import broker_up  # noqa: E402
from infra.clients import make_admin  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402


def crowd_like(seconds: float, rate: int = 48_000) -> np.ndarray:
    """Noise shaped like a crowd (pink-ish, slowly modulated): compresses like the real thing."""
    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    spectrum /= np.maximum(1.0, np.arange(len(spectrum)) / 200) ** 0.5
    pink = np.fft.irfft(spectrum, n)
    envelope = 1 + 0.5 * np.sin(2 * np.pi * np.arange(n) / rate * 0.2)
    audio = pink * envelope
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


def run_encoder(env: dict[str, str], *args: str) -> tuple[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "infra.cli", "encoder", "--quiet", *args],
                            capture_output=True, text=True, env=env, cwd=REPO, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"encoder failed: {result.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result.stdout, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="audio length for the --fast runs")
    parser.add_argument("--live-seconds", type=float, default=30.0, help="audio length for the live CPU run")
    args = parser.parse_args()

    settings = Settings.from_env()
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        broker_up(settings)
    settings = settings.with_overrides(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    apply_catalogue(make_admin(settings), settings)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "CROWDSOUND_TOPIC_PREFIX": settings.topic_prefix}

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "crowd.wav"
        soundfile.write(wav, crowd_like(args.minutes * 60), 48_000, subtype="PCM_16")
        print(f"encoder --fast, {args.minutes:.0f} min of 48 kHz mono audio, 100 ms frames")
        print(f"{'payload':<8} {'frames':>7} {'MB':>8} {'seconds':>8} {'frames/s':>9} {'MB/s':>7} {'x real time':>12}")
        for encoding in ("pcm", "flac"):
            out, _ = run_encoder(env, "--match", f"bench-{encoding}", "--source", str(wav), "--start", "0:00",
                                 "--fast", "--encoding", encoding, "--spool-dir", f"{tmp}/spool-{encoding}")
            match = re.search(r"sent (\d+) frames \(([\d.]+) s of audio, ([\d.]+) MB\) in ([\d.]+) s", out)
            assert match, out
            frames, audio_s, mb, elapsed = int(match[1]), float(match[2]), float(match[3]), float(match[4])
            print(f"{encoding:<8} {frames:>7} {mb:>8.1f} {elapsed:>8.2f} {frames / elapsed:>9.0f} {mb / elapsed:>7.1f} "
                  f"{audio_s / elapsed:>12.0f}")

        live = Path(tmp) / "live.wav"
        soundfile.write(live, crowd_like(args.live_seconds), 48_000, subtype="PCM_16")
        _, cpu = run_encoder(env, "--match", "bench-live", "--source", str(live), "--start", "0:00",
                             "--spool-dir", f"{tmp}/spool-live")
        print(f"\nlive encoder (real-time pacing, PCM), {args.live_seconds:.0f} s of audio: "
              f"{cpu:.2f} CPU s = {100 * cpu / args.live_seconds:.1f} % of one core "
              f"(includes start-up; {100 * cpu / args.live_seconds:.1f} % -> a 2-core box runs "
              f"{int(200 / max(100 * cpu / args.live_seconds, 0.1))} encoders)")


if __name__ == "__main__":
    main()
