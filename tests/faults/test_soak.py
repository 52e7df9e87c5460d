"""A two-hour match, accelerated, through the stream worker and the composers: memory flat,
no slowdown, lag flat where the box can keep up.

A minute of the synthetic stadium is rendered once and looped into a venue encoder (raw PCM
on its stdin, in 1 s frames) 60 times faster than real time — two hours of crowd audio in two
minutes — with a goal every ten minutes of match time on the feed. An audio composer (which
renders about twenty times faster than real time per core, so cannot keep up, and runs at low
priority not to slow the others) composes what it can in the time. The resident memory of
each process is sampled throughout and its slope fitted after the first fifth (warm-up), per
hour of match it processed. On a shared 2-core box the worker goes through the audio about
35–45 times faster than real time, short of the 60 it is fed, so its lag grows with the box's
capacity, not with a leak: what is asserted is that it goes as fast late in the match as
early (no state or work growing with the match), that the control composer's lag does not
grow, and that both drain at the end.
"""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest

from infra.clients import make_producer, match_key
from producers.walltime import now_ms
from schemas.codec import encode
from tests.faults.conftest import match_script
from tests.faults.pipeline import consumer_lag, groups, record_figures, rss_mib, slope
from tests.kafka_helpers import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

MATCH = "m-soak"
MATCH_S = 2 * 3600
SPEED = 60
FRAME = 48_000  # samples: 1 s at 48 kHz (the per-record work of 100 ms frames would need more than 2 cores at 60x)


def _loop_of_the_stadium(tmp_path) -> np.ndarray:
    """A minute of the synthetic stadium's crowd, int16 mono."""
    from producers.stadium import load_script, render_stadium
    from schemas.audio import to_int16

    script = load_script(match_script(tmp_path, "m-soak-loop", seconds=55))
    return to_int16(np.concatenate(list(render_stadium(script, sample_rate=48_000, channels=1))))[:48_000 * 60, 0]


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_two_hour_match_leaves_memory_and_lag_flat(topics, pipeline, tmp_path):
    settings = topics
    loop = _loop_of_the_stadium(tmp_path)
    audio_port = free_port()
    pipeline.start("worker", "worker")
    pipeline.start("composer-control", "composer", "--instance", "soak", "--outputs", "control")
    pipeline.start("composer-audio", "composer", "--instance", "soak-audio", "--outputs", "audio",
                   "--metrics-port", str(audio_port), nice=15)
    time.sleep(8)
    kickoff = now_ms()
    encoder = pipeline.start("encoder", "encoder", "--match", MATCH, "--source", "-", "--kickoff", str(kickoff),
                             "--frame-ms", "1000",
                             "--spool-dir", str(tmp_path / "spool"), "--drain-timeout", "120", "--quiet",
                             supervised=False, stdin=subprocess.PIPE)
    events = make_producer(settings)
    watched = groups(settings, "control", "audio")  # worker, composer-control, composer-audio
    samples: list[dict] = []
    fed = [0]  # frames written to the encoder
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.wait(3.0):
            point = {"t": time.monotonic() - started, "fed_s": fed[0] * FRAME / 48_000,
                     "music_s": _metric(audio_port, "crowdsound_composer_audio_seconds_total")}
            for name, (group, group_topics) in watched.items():
                point[f"rss_{name}"] = rss_mib(pipeline.processes[name].pid)
                try:
                    point[f"lag_{name}"] = consumer_lag(settings, group, group_topics)
                except Exception:  # noqa: BLE001 - a group not formed yet
                    point[f"lag_{name}"] = None
            samples.append(point)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        started = time.monotonic()
        frames = MATCH_S * 48_000 // FRAME
        per_s = 48_000 // FRAME
        for index in range(frames):
            start = (index * FRAME) % len(loop)
            assert encoder.popen is not None and encoder.popen.stdin is not None
            encoder.popen.stdin.write(loop[start:start + FRAME].tobytes())
            fed[0] = index + 1
            if index % (600 * per_s) == 300 * per_s:  # a home goal every ten minutes of match time
                at_ms = index * 1000 // per_s
                event = {"match_id": MATCH, "event_id": f"soak-goal-{index}", "type": "GOAL", "side": "HOME",
                         "team": None, "player": None, "outcome": None,
                         "clock": {"period": "FIRST_HALF", "ms": at_ms}, "wall_time_ms": kickoff + at_ms,
                         "source": "soak"}
                events.produce(settings.topic("match.events.v1"), key=match_key(MATCH), value=encode("MatchEvent", event))
                events.poll(0)
            ahead = started + (index + 1) / (per_s * SPEED) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        encoder.popen.stdin.close()
        events.flush(30)
        feed_s = time.monotonic() - started
        assert pipeline.wait("encoder", timeout_s=180) == 0, encoder.log()[-2000:]
        drained = _wait_until(lambda: samples and samples[-1]["lag_worker"] == 0 and samples[-1]["lag_composer-control"] == 0,
                              timeout_s=120)
    finally:
        stop.set()
        sampler.join(10)
        audio = pipeline.processes["composer-audio"]
        audio.supervised = False
        audio.signal(signal.SIGKILL)  # its backlog is not under test: no need to wait for it to stop

    figures = {"match_hours": MATCH_S / 3600, "speed": SPEED, "feed_s": round(feed_s, 1), "drained": drained,
               "samples": len(samples)}
    warm = [s for s in samples if s["t"] >= feed_s / 5]  # after warm-up
    half = [s for s in samples if s["t"] >= feed_s / 2 and s["t"] <= feed_s]
    for name in watched:
        points = [(_processed_s(s, name) / 3600, s[f"rss_{name}"]) for s in warm if s[f"rss_{name}"] == s[f"rss_{name}"]]
        figures[f"{name}_rss_mib"] = [round(samples[0][f"rss_{name}"]), round(max(s[f"rss_{name}"] for s in samples))]
        figures[f"{name}_rss_slope_mib_per_match_hour"] = round(slope(points), 1)
        lags = [s[f"lag_{name}"] for s in half if s[f"lag_{name}"] is not None]
        figures[f"{name}_lag_first_last_of_second_half"] = [lags[0], lags[-1]] if lags else None
        figures[f"{name}_speed_early_late"] = [round(_speed(samples, name, feed_s / 5, feed_s / 2), 1),
                                               round(_speed(samples, name, feed_s / 2, feed_s), 1)]
    figures["composer-audio_music_s"] = round(samples[-1]["music_s"]) if samples else 0
    record_figures("soak", **figures)

    assert drained, samples[-3:]
    for name in ("worker", "composer-control"):
        assert figures[f"{name}_rss_slope_mib_per_match_hour"] < 40, figures  # flat: no leak that grows with the match
        # No slowdown as the match goes on (state or work growing with it): as fast late as early.
        early, late = figures[f"{name}_speed_early_late"]
        assert late >= 0.75 * early, figures
    # The control composer keeps up with what the worker gives it: its lag does not grow. A lag that grows
    # never comes back down, a momentary one does (one sample of 47 records, 0.8 s of wall time at 60x, between
    # two of 2 and 0 failed a CI run): judge the last samples by their least.
    lags = [s["lag_composer-control"] for s in half if s["lag_composer-control"] is not None]
    assert lags and min(lags[-3:]) <= max(lags[:3]) + 30, lags
    assert figures["composer-audio_rss_slope_mib_per_match_hour"] < 200, figures
    assert not pipeline.crashes(), {n: p.log()[-2000:] for n, p in pipeline.processes.items()}


def _processed_s(sample: dict, name: str) -> float:
    """Seconds of match the process had got through at ``sample``."""
    if name == "composer-audio":
        return sample["music_s"]
    if name == "worker":  # its lag: 1 s frames not yet taken of those fed
        return max(0.0, sample["fed_s"] - (sample["lag_worker"] or 0) * FRAME / 48_000)
    # A composer: 1 s windows not yet taken of those the worker made.
    return max(0.0, _processed_s(sample, "worker") - (sample[f"lag_{name}"] or 0))


def _speed(samples: list[dict], name: str, start_s: float, end_s: float) -> float:
    """How many times real time ``name`` went through the match between two moments of the feed."""
    points = [(s["t"], _processed_s(s, name)) for s in samples if start_s <= s["t"] <= end_s and s[f"lag_{name}"] is not None]
    return slope(points)


def _wait_until(condition, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False
