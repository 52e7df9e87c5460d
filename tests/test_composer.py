"""The composer against the real broker: music per match, exactly once, through a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import wave

import mido
import pytest
from confluent_kafka import Producer

from consumers.music.director import MusicPrefs
from consumers.score import MatchScore
from infra.clients import make_producer, match_key
from schemas.codec import decode, encode
from tests.conftest import run_cli
from tests.kafka_helpers import cli_env, free_port, read_topic
from tests.music_samples import Spell, emotion_windows

pytestmark = pytest.mark.kafka

SPELLS = [
    Spell(0, 25, "CALM", 0.2, 0.0),
    Spell(25, 45, "CELEBRATION", 0.95, 0.8, events=[(27, "GOAL", "HOME")]),
    Spell(45, 70, "ANGER", 0.7, -0.5, events=[(50, "CARD", "AWAY")]),
]


def _env(settings) -> dict[str, str]:
    return cli_env(settings, CROWDSOUND_LOG_LEVEL="INFO")


def _start(settings, tmp_path, name: str, *args: str) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "composer", "--instance", name, *args],
                            cwd=tmp_path, env=_env(settings), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=60)


def _produce(producer: Producer, settings, windows: list[dict]) -> None:
    for window in windows:
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(window["match_id"]),
                         value=encode("EmotionWindow", window))
    producer.flush(30)


def _records(settings, topic: str, record_type: str, expected: int, timeout_s: float = 90) -> list[dict]:
    return [decode(m.value(), expect=record_type)
            for m in read_topic(settings, settings.topic(topic), expected=expected, timeout_s=timeout_s)]


def _expected(match_id: str, windows: list[dict], *, synth=None) -> tuple[list[dict], list[dict]]:
    score = MatchScore(match_id, synth=synth)
    outputs = [o for w in windows for o in score.on_window(w)]
    # Through the codec, as a consumer sees them (Avro floats are float32).
    return ([decode(encode("MusicControl", o.record), expect="MusicControl") for o in outputs if o.kind == "control"],
            [o.record for o in outputs if o.kind == "audio"])


def _strip_wall(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_ms"} for r in records]


def test_music_for_two_matches_with_metrics_dead_letters_and_listen(topics, tmp_path):
    settings = topics
    port = free_port()
    composer = _start(settings, tmp_path, "c1", "--metrics-port", str(port))
    producer = make_producer(settings)
    windows = {m: emotion_windows(m, SPELLS) for m in ("m-one", "m-two")}
    try:
        _produce(producer, settings, windows["m-one"] + windows["m-two"])
        producer.produce(settings.topic("crowd.emotions.v1"), key=b"m-one", value=b"\x00not avro")
        producer.flush(10)
        expected_controls = {m: _expected(m, w)[0] for m, w in windows.items()}
        total = sum(len(c) for c in expected_controls.values())
        got = _records(settings, "music.control.v1", "MusicControl", total)
        for match_id, expected in expected_controls.items():
            mine = [r for r in got if r["match_id"] == match_id]
            # The same windows give the same music as the score run here, bar for bar.
            assert _strip_wall(mine) == _strip_wall(expected)
        assert [r["stinger"] for r in got if r["match_id"] == "m-one" and r["kind"] == "STINGER"] == ["goal", "card"]

        dead = _records(settings, "crowd.emotions.dlq.v1", "DeadLetter", 1)
        assert len(dead) == 1 and dead[0]["original_value"] == b"\x00not avro" and dead[0]["reason"]

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for series in ("crowdsound_composer_windows_total", "crowdsound_composer_controls_total",
                       "crowdsound_composer_audio_seconds_total", "crowdsound_composer_audio_gap_seconds_total",
                       'crowdsound_composer_tempo_bpm{match_id="m-one"}',
                       'crowdsound_composer_intensity{match_id="m-two"}',
                       "crowdsound_composer_emotion_to_output_seconds_bucket",
                       "crowdsound_composer_dead_letters_total"):
            assert series in metrics, series
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).status == 200

        audio = [c for c in _records(settings, "music.audio.v1", "AudioChunk", 10_000, timeout_s=8)
                 if c["match_id"] == "m-one"]
        assert [c["seq"] for c in audio] == list(range(len(audio))) and len(audio) > 100
        out = tmp_path / "live.wav"
        result = run_cli("listen", "--match", "m-one", "--out", str(out), "--timeout", "3", settings=settings)
        assert result.returncode == 0, result.stderr
        with wave.open(str(out)) as wav:
            assert wav.getframerate() == 48_000 and wav.getnchannels() == 2
            assert wav.getnframes() == sum(c["samples_per_channel"] for c in audio)
            frames = wav.readframes(wav.getnframes())
        # --out - streams the same samples as raw s16le, e.g. into ffmpeg.
        raw = subprocess.run([sys.executable, "-m", "infra.cli", "listen", "--match", "m-one", "--out", "-",
                              "--timeout", "3"], env=_env(settings), capture_output=True, timeout=60, check=False)
        assert raw.returncode == 0 and raw.stdout == frames

        # The live music's sidecar (what `make demo` writes next to live.wav for the audit):
        # every bar and stinger of the control stream, placed where the WAV has it.
        from consumers.render.mastering import LATENCY
        from consumers.replay.live_record import write_live_record

        assert write_live_record(settings, "m-one", tmp_path) == ["live.json", "live.mid"]
        live = json.loads((tmp_path / "live.json").read_text())
        score = MatchScore("m-one")
        placed = [o for w in windows["m-one"] for o in score.on_window(w) if o.kind == "control"]
        bars = [o for o in placed if o.record["kind"] == "BAR"]
        assert [b["bar"] for b in live["bars"]] == [o.record["bar"] for o in bars]
        assert all(abs(b["at_s"] - (o.sample + LATENCY) / 48_000) < 0.002 for b, o in zip(live["bars"], bars))
        goal = next(o for o in placed if o.record["stinger"] == "goal")
        assert [s["stinger"] for s in live["stingers"]] == ["goal", "card"]
        assert abs(live["stingers"][0]["at_s"] - (goal.sample + LATENCY) / 48_000) < 0.002
        assert len(mido.MidiFile(str(tmp_path / "live.mid")).tracks) > 3
    finally:
        _stop(composer)


def test_a_killed_composer_resumes_without_duplicate_or_missing_bars(topics, tmp_path):
    settings = topics
    windows = emotion_windows("m-kill", SPELLS + [Spell(70, 120, "CHANTING", 0.6, 0.4, chant_bpm=120.0)])
    expected_controls, _ = _expected("m-kill", windows)
    producer = make_producer(settings)
    composer = _start(settings, tmp_path, "k1")
    try:
        for index in range(0, len(windows), 10):
            _produce(producer, settings, windows[index:index + 10])
            time.sleep(0.3)
            if index == 40:
                _stop(composer, signal.SIGKILL)  # mid-stream, likely inside a transaction
                composer = _start(settings, tmp_path, "k1")
        got = _records(settings, "music.control.v1", "MusicControl", len(expected_controls), timeout_s=120)
        keys = [(r["bar"], r["kind"], r["stinger"]) for r in got]
        assert len(keys) == len(set(keys)), "a bar was emitted twice"
        assert [r["bar"] for r in got if r["kind"] == "BAR"] == list(range(len(
            [r for r in expected_controls if r["kind"] == "BAR"])))
        assert _strip_wall(got) == _strip_wall(expected_controls)  # and it is the same music
        audio = _records(settings, "music.audio.v1", "AudioChunk", 10_000, timeout_s=8)
        assert [c["seq"] for c in audio] == list(range(len(audio)))
        assert all(a["first_sample"] + a["samples_per_channel"] == b["first_sample"] for a, b in zip(audio, audio[1:]))
    finally:
        _stop(composer)


def test_preferences_reach_a_running_composer(topics, tmp_path):
    settings = topics
    composer = _start(settings, tmp_path, "p1", "--outputs", "control")
    producer = make_producer(settings)
    windows = emotion_windows("m-prefs", [Spell(0, 80, "CELEBRATION", 0.95, 0.8)])
    try:
        _produce(producer, settings, windows[:30])
        before = _records(settings, "music.control.v1", "MusicControl", 10)
        assert before and all(r["style"] == "orchestral" for r in before)
        result = run_cli("prefs", "set", "--match", "m-prefs", "--style", "electronic", "--mute", "drums",
                         "--tempo-range", "100-110", settings=settings)
        assert result.returncode == 0, result.stderr
        bad = run_cli("prefs", "set", "--all", "--intensity-min", "0.9", "--intensity-max", "0.2", settings=settings)
        assert bad.returncode == 1 and "above" in bad.stderr and "Traceback" not in bad.stderr
        time.sleep(1.0)  # the composer reads preferences before each poll: they apply from window 30 on
        _produce(producer, settings, windows[30:])
        score = MatchScore("m-prefs")
        expected = [o for w in windows[:30] for o in score.on_window(w)]
        score.set_prefs(MusicPrefs(style="electronic", tempo_min_bpm=100, tempo_max_bpm=110, muted_layers=("drums",)))
        expected += [o for w in windows[30:] for o in score.on_window(w)]
        got = _records(settings, "music.control.v1", "MusicControl", len(expected))
        assert _strip_wall(got) == _strip_wall([decode(encode("MusicControl", o.record), expect="MusicControl")
                                                for o in expected])
        late = [r for r in got if r["kind"] == "BAR" and r["clock"]["ms"] >= 40_000]
        assert late and all(r["style"] == "electronic" and "drums" not in r["layers"] and 100 <= r["tempo_bpm"] <= 110
                            for r in late)
        shown = run_cli("prefs", "show", "--match", "m-prefs", settings=settings)
        assert '"style": "electronic"' in shown.stdout
    finally:
        _stop(composer)


def test_a_match_not_heard_for_hours_is_forgotten_and_its_state_deleted(topics, tmp_path):
    """Finished matches must not make the state topic (and every restore) grow for ever."""
    from consumers.composer import state_topic
    from infra.partitioning import partition_for

    settings = topics
    old = "m-finished"
    new = next(m for m in (f"m-later-{i}" for i in range(1000))
               if partition_for(match_key(m), settings.partitions) == partition_for(match_key(old), settings.partitions))
    composer = _start(settings, tmp_path, "c-forget", "--outputs", "control", "--forget-after", "1")
    producer = make_producer(settings)
    start = 1_700_000_000_000
    try:
        _produce(producer, settings, emotion_windows(old, SPELLS[:1], wall_start_ms=start))
        # Another match of the same partition, heard 2 hours later (match audio time).
        _produce(producer, settings, emotion_windows(new, SPELLS[:1], wall_start_ms=start + 2 * 3_600_000))
        old_controls = len(_expected(old, emotion_windows(old, SPELLS[:1]))[0])
        expected = old_controls + len(_expected(new, emotion_windows(new, SPELLS[:1]))[0])
        assert len(_records(settings, "music.control.v1", "MusicControl", expected)) == expected
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "forgot match_id=m-finished" not in (tmp_path / "c-forget.log").read_text():
            time.sleep(0.5)
    finally:
        _stop(composer)
    latest: dict[bytes, bytes | None] = {}
    for message in read_topic(settings, state_topic(settings), expected=10_000, timeout_s=5):
        latest[message.key()] = message.value()
    assert latest[f"control:{old}".encode()] is None  # a tombstone: compaction removes the match
    assert latest[f"control:{new}".encode()] is not None
    assert "forgot match_id=m-finished" in (tmp_path / "c-forget.log").read_text()

    # A restarted composer goes on with the later match only, where it left off.
    producer = make_producer(settings)
    composer = _start(settings, tmp_path, "c-forget", "--outputs", "control", "--forget-after", "1")
    try:
        more = emotion_windows(new, SPELLS[:2], wall_start_ms=start + 2 * 3_600_000)
        _produce(producer, settings, more[len(emotion_windows(new, SPELLS[:1])):])
        whole = _expected(new, more)[0]
        got = _records(settings, "music.control.v1", "MusicControl", old_controls + len(whole))
        assert _strip_wall([r for r in got if r["match_id"] == new]) == _strip_wall(whole)
    finally:
        _stop(composer)


def test_audio_rendered_on_several_threads_is_byte_for_byte_the_single_threaded_audio(topics, tmp_path):
    """--render-threads: matches composed at once on threads, each with its own synth, give
    exactly the bytes one synth on one thread gives, chunk for chunk."""
    from consumers.render.synth import SoundFontSynth

    settings = topics
    spells = [Spell(0, 8, "CALM", 0.2, 0.0),
              Spell(8, 16, "CELEBRATION", 0.95, 0.8, events=[(9, "GOAL", "HOME")])]
    # Three matches whose windows interleave, each at its own point of the crowd's script.
    windows = {m: emotion_windows(m, spells[shift:] + spells[:shift]) for shift, m in enumerate(("t-a", "t-b", "t-c"))}
    composer = _start(settings, tmp_path, "threads", "--outputs", "audio", "--render-threads", "3")
    producer = make_producer(settings)
    try:
        _produce(producer, settings, [w for group in zip(*windows.values()) for w in group])
        with SoundFontSynth() as synth:
            expected = {m: _expected(m, w, synth=synth)[1] for m, w in windows.items()}
        got = _records(settings, "music.audio.v1", "AudioChunk", sum(len(a) for a in expected.values()))
        for match_id, chunks in expected.items():
            mine = [c for c in got if c["match_id"] == match_id]
            assert len(mine) == len(chunks) > 10
            assert [c["first_sample"] for c in mine] == [c["first_sample"] for c in chunks]
            assert all(a["payload"] == b["payload"] for a, b in zip(mine, chunks)), match_id
    finally:
        _stop(composer)


def test_a_window_the_composer_fails_on_is_dead_lettered_and_the_music_goes_on(topics, monkeypatch):
    """A bug met by one window must not crash-loop the composer (and move with its partition to
    the next one): the window is dead-lettered with the error, the rest composed exactly once."""
    import threading

    from consumers.composer import Composer, _ensure_state_topic
    from consumers.composer_config import ComposerConfig

    settings = topics
    windows = emotion_windows("m-bug", SPELLS)
    poisoned = windows[30]
    expected = _expected("m-bug", windows[:30] + windows[31:])[0]
    compose = MatchScore.on_window

    def with_a_bug(score, window):
        if window["clock"] == poisoned["clock"]:
            raise ZeroDivisionError("a bug in the score")
        return compose(score, window)

    monkeypatch.setattr(MatchScore, "on_window", with_a_bug)
    _ensure_state_topic(settings)
    composer = Composer(settings, ComposerConfig(outputs=("control",), instance="bug"))
    running = threading.Thread(target=composer.run, daemon=True)
    running.start()
    try:
        _produce(make_producer(settings), settings, windows)
        got = _records(settings, "music.control.v1", "MusicControl", len(expected))
        assert running.is_alive()
        assert _strip_wall(got) == _strip_wall(expected)
        [dead] = _records(settings, "crowd.emotions.dlq.v1", "DeadLetter", 1)
        assert "a bug in the score" in dead["reason"] and dead["error_type"] == "ZeroDivisionError"
        assert dead["source_offset"] == 30
    finally:
        composer.running = False
        running.join(30)
        composer.close()


def test_a_venue_clock_hours_fast_does_not_make_the_composer_forget_its_partition(topics, tmp_path):
    """The forget clock is event time bounded by the record's time: windows whose audio time
    a venue clock put hours ahead cannot age the other matches of their partition."""
    from infra.partitioning import partition_for

    settings = topics
    steady = "m-steady"
    fast = next(m for m in (f"m-fast-{i}" for i in range(1000))
                if partition_for(match_key(m), settings.partitions) == partition_for(match_key(steady), settings.partitions))
    now = int(time.time() * 1000)
    steady_windows = emotion_windows(steady, SPELLS[:2], wall_start_ms=now - 60_000)
    composer = _start(settings, tmp_path, "c-skew", "--outputs", "control", "--forget-after", "1")
    producer = make_producer(settings)
    try:
        half = len(steady_windows) // 2
        _produce(producer, settings, steady_windows[:half])
        _produce(producer, settings, emotion_windows(fast, SPELLS[:1], wall_start_ms=now + 3 * 3_600_000))
        _produce(producer, settings, steady_windows[half:])
        whole = _expected(steady, steady_windows)[0]
        fast_controls = len(_expected(fast, emotion_windows(fast, SPELLS[:1]))[0])
        got = _records(settings, "music.control.v1", "MusicControl", len(whole) + fast_controls)
    finally:
        _stop(composer)
    assert "forgot match_id=m-steady" not in (tmp_path / "c-skew.log").read_text()
    assert _strip_wall([r for r in got if r["match_id"] == steady]) == _strip_wall(whole)  # no restart from bar 0


def test_windows_trickling_in_share_transactions_and_are_all_composed(topics):
    """At 100 live matches windows arrive every ~10 ms; one transaction each cost the broker a
    quarter of a core. Windows arriving within the gather time go into one transaction: the
    transactions begin at most every ``gather_s``, and the music is the same."""
    import math
    import threading

    from consumers.composer import Composer, _ensure_state_topic
    from consumers.composer_config import ComposerConfig

    settings = topics
    windows = emotion_windows("m-trickle", SPELLS[:2])[:40]
    expected = _expected("m-trickle", windows)[0]
    _ensure_state_topic(settings)
    # A long gather, so that the rule shows over a few windows (they come ~40 ms apart here).
    config = ComposerConfig(outputs=("control",), instance="trickle", gather_s=0.2)
    composer = Composer(settings, config)
    began: list[float] = []
    process = composer._process

    def counted(batch):
        began.append(time.monotonic())
        return process(batch)

    composer._process = counted
    running = threading.Thread(target=composer.run, daemon=True)
    running.start()
    producer = make_producer(settings, {"linger.ms": 0})
    try:
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(windows[0]["match_id"]),
                         value=encode("EmotionWindow", windows[0]))
        producer.flush(10)
        deadline = time.monotonic() + 60
        while not began and time.monotonic() < deadline:  # the composer is assigned and reading
            time.sleep(0.05)
        time.sleep(0.5)
        began.clear()
        for window in windows[1:]:  # one every 5 ms, each on its own
            producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(window["match_id"]),
                             value=encode("EmotionWindow", window))
            producer.flush(10)
            time.sleep(0.005)
        got = _records(settings, "music.control.v1", "MusicControl", len(expected))
    finally:
        composer.running = False
        running.join(30)
        composer.close()
    assert _strip_wall(got) == _strip_wall(expected)
    assert len(began) >= 2
    span = began[-1] - began[0]
    # (5 % slack: the gather is timed from inside the transaction and librdkafka's consume timeout
    # has millisecond steps; without the gather this is 10 transactions in ~0.34 s)
    assert len(began) <= math.floor(span / (0.95 * config.gather_s)) + 1, (
        f"{len(began)} transactions in {span:.3f} s: more than one per {config.gather_s * 1000:.0f} ms")
    assert len(began) < len(windows) / 4


def test_a_replaced_composer_can_no_longer_add_music_on_any_of_its_producers(topics):
    """A pod's replacement may start while the old pod still runs (a network partition, a slow
    termination). The replacement, with the same instance name, fences the old one: nothing the
    old one composes reaches a downstream (read_committed) consumer. Its transactions take turns
    on several producers, so every one of them must be fenced."""
    from confluent_kafka import KafkaException

    from consumers.composer import Composer, _ensure_state_topic
    from consumers.composer_config import ComposerConfig

    settings = topics
    _ensure_state_topic(settings)
    config = ComposerConfig(outputs=("control",), instance="pod-0")
    old = Composer(settings, config)
    assert len(old.producers) >= 2
    new = Composer(settings, config)
    refused = []
    try:
        for producer in old.producers:
            producer.begin_transaction()
            producer.produce(settings.topic("music.control.v1"), key=b"m-zombie", value=b"zombie")
            with pytest.raises(KafkaException) as error:
                producer.commit_transaction(30)
            refused.append(error.value.args[0])
        # The replacement's own transactions, on each of its producers in turn, still commit.
        for turn in range(len(new.producers)):
            new.producer.begin_transaction()
            new.producer.produce(settings.topic("music.control.v1"), key=b"m-new", value=b"alive")
            new._commit("committing the replacement's transaction")
            assert new.turn == (turn + 1) % len(new.producers)
    finally:
        new.close()
        old.close()
    assert all(error.fatal() for error in refused), [str(e) for e in refused]
    values = [m.value() for m in read_topic(settings, settings.topic("music.control.v1"), expected=len(new.producers))]
    assert values == [b"alive"] * len(new.producers)
