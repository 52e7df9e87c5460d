"""The event-time join: emit early, revise later, late events kept aside, and the property
that arrival order within grace does not change the final windows."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.context import STATES
from streams.features import FEATURE_NAMES
from streams.join import AcousticEmotion, JoinConfig, MatchJoin

RATE = 16_000
FRAME = 1600  # 100 ms
LOUD = FEATURE_NAMES.index("loudness_rel_db")


def fake_model(features: np.ndarray) -> list[AcousticEmotion]:
    """A deterministic stand-in for the ONNX model: loud -> excited, quiet -> calm."""
    out = []
    for row in features:
        arousal = 1 / (1 + math.exp(-(float(row[LOUD]) - 6) / 3))
        probabilities = {state: 0.02 for state in STATES}
        probabilities["EXCITEMENT" if arousal > 0.6 else "CALM"] = 0.88
        out.append(AcousticEmotion(probabilities, arousal, 0.0))
    return out


def crowd(seconds: int, *, roar_at: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = 0.02 * rng.standard_normal(seconds * RATE)
    if roar_at is not None:
        audio[roar_at * RATE:(roar_at + 6) * RATE] *= 10
    return audio


def frames(audio: np.ndarray, *, period: str = "FIRST_HALF", start_ms: int = 0, session: str = "s1"):
    out = []
    for seq, begin in enumerate(range(0, len(audio) - FRAME + 1, FRAME)):
        record = {"session_id": session, "seq": seq, "clock": {"period": period, "ms": start_ms + seq * 100},
                  "wall_time_ms": 1_000_000 + seq * 100, "sample_rate": RATE, "samples_per_channel": FRAME}
        out.append((record, audio[begin:begin + FRAME]))
    return out


def event(event_id: str, kind: str, side: str, ms: int, period: str = "FIRST_HALF") -> dict:
    return {"event_id": event_id, "type": kind, "side": side, "clock": {"period": period, "ms": ms}}


def run(join: MatchJoin, items: list) -> list[dict]:
    emitted = []
    for kind, payload in items:
        if kind == "audio":
            record, samples = payload
            emitted += join.add_audio(record, samples, predict=fake_model, now_ms=0).windows
        else:
            emitted += join.add_event(payload, now_ms=0).windows
    return emitted


def final(emitted: list[dict]) -> dict[tuple, dict]:
    """What a consumer keeps: the highest revision per window, compared by content."""
    best: dict[tuple, dict] = {}
    for record in emitted:
        key = (record["clock"]["period"], record["clock"]["ms"])
        if key not in best or record["revision"] > best[key]["revision"]:
            best[key] = record
    return {k: {f: v[f] for f in ("state", "probabilities", "arousal", "valence", "events")} for k, v in best.items()}


def test_windows_are_emitted_as_soon_as_their_audio_is_complete():
    join = MatchJoin("m1")
    emitted = run(join, [("audio", f) for f in frames(crowd(10))])
    starts = [r["clock"]["ms"] for r in emitted]
    assert starts == list(range(0, 8000, 1000))  # 3 s windows, 1 s hop: [0,3) ... [7,10)
    assert all(r["revision"] == 0 and r["length_ms"] == 3000 for r in emitted)
    first_frame_closing = next(i for i, f in enumerate(frames(crowd(10))) if f[0]["clock"]["ms"] == 2900)
    join2 = MatchJoin("m1")
    before = run(join2, [("audio", f) for f in frames(crowd(10))[:first_frame_closing]])
    assert before == []  # window [0,3) needs the frame at 2.9 s
    assert run(join2, [("audio", frames(crowd(10))[first_frame_closing])])[0]["clock"]["ms"] == 0


def test_a_home_goal_makes_the_roar_a_celebration_and_an_away_goal_does_not():
    audio = [("audio", f) for f in frames(crowd(40, roar_at=20))]
    home = final(run(MatchJoin("m"), [("event", event("g", "GOAL", "HOME", 20_000))] + audio))
    away = final(run(MatchJoin("m"), [("event", event("g", "GOAL", "AWAY", 20_000))] + audio))
    heard = final(run(MatchJoin("m"), audio))
    roar = ("FIRST_HALF", 21_000)
    assert heard[roar]["state"] == "EXCITEMENT"
    assert home[roar]["state"] == "CELEBRATION" and home[roar]["valence"] > 0.5
    assert away[roar]["state"] == "DISAPPOINTMENT" and away[roar]["valence"] < -0.3
    assert [e["event_id"] for e in home[roar]["events"]] == ["g"]


def test_a_late_event_within_grace_revises_emitted_windows():
    join = MatchJoin("m", JoinConfig(grace_ms=15_000))
    audio = frames(crowd(40, roar_at=20))
    emitted = run(join, [("audio", f) for f in audio[:300]])  # audio up to 30 s
    out = join.add_event(event("g", "GOAL", "HOME", 20_000), now_ms=0)  # 10 s behind: in grace
    assert not out.late_event
    revised = {r["clock"]["ms"]: r for r in out.windows}
    assert revised[21_000]["revision"] == 1 and revised[21_000]["state"] == "CELEBRATION"
    assert all(r["revision"] == 1 for r in out.windows)
    original = {r["clock"]["ms"]: r for r in emitted}
    assert original[21_000]["state"] == "EXCITEMENT"


def test_an_event_later_than_grace_is_counted_and_changes_nothing():
    join = MatchJoin("m", JoinConfig(grace_ms=10_000))
    run(join, [("audio", f) for f in frames(crowd(40, roar_at=5))])
    out = join.add_event(event("g", "GOAL", "HOME", 6_000), now_ms=0)  # 34 s behind
    assert out.late_event and out.windows == [] and join.late_events == 1


def test_duplicate_and_out_of_order_frames_are_dropped_with_a_reason():
    join = MatchJoin("m")
    audio = frames(crowd(5))
    run(join, [("audio", f) for f in audio[:20]])
    duplicate = join.add_audio(audio[10][0], audio[10][1], predict=fake_model, now_ms=0)
    assert duplicate.dropped and "duplicate" in duplicate.dropped
    old = dict(audio[5][0], session_id="s2", seq=0)  # another session, in the past
    stale = join.add_audio(old, audio[5][1], predict=fake_model, now_ms=0)
    assert stale.dropped and "older" in stale.dropped
    assert join.dropped_frames == 2


def test_state_survives_a_json_round_trip_mid_match():
    audio = [("audio", f) for f in frames(crowd(30, roar_at=12))]
    items = audio[:150] + [("event", event("g", "GOAL", "HOME", 12_000))] + audio[150:]
    straight = run(MatchJoin("m"), items)
    join = MatchJoin("m")
    first = run(join, items[:160])
    restored = MatchJoin.from_state(json.loads(json.dumps(join.to_state())))
    assert first + run(restored, items[160:]) == straight


def test_windows_continue_across_half_time_and_events_stay_in_their_period():
    first = frames(crowd(6), period="FIRST_HALF", start_ms=2_700_000)
    brk = frames(crowd(6, seed=1), period="HALF_TIME", session="s1")
    brk = [(dict(r, seq=r["seq"] + len(first)), a) for r, a in brk]
    join = MatchJoin("m")
    emitted = run(join, [("audio", f) for f in first + brk])
    periods = [(r["clock"]["period"], r["clock"]["ms"]) for r in emitted]
    assert ("FIRST_HALF", 2_705_000) in periods and ("HALF_TIME", 0) in periods
    out = join.add_event(event("e", "GOAL", "HOME", 2_704_000), now_ms=0)  # late-reported stoppage goal
    assert not out.late_event and all(r["clock"]["period"] == "FIRST_HALF" for r in out.windows)


AUDIO_ITEMS = [("audio", f) for f in frames(crowd(45, roar_at=18, seed=7))]
EVENTS = [event("shot", "SHOT", "HOME", 9_000), event("goal", "GOAL", "HOME", 18_000),
          event("card", "CARD", "AWAY", 26_500), event("var", "VAR_REVIEW", "NONE", 31_000)]
GRACE = 12_000


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=-30.0, max_value=GRACE / 1000 - 0.3), min_size=len(EVENTS), max_size=len(EVENTS)),
       st.permutations(range(len(EVENTS))))
def test_any_arrival_order_within_grace_gives_the_same_final_windows(lags_s, order):
    # Each event arrives when the audio has reached (event time + lag): negative lags are
    # events reported before the crowd's audio got there, positive ones up to the grace.
    config = JoinConfig(grace_ms=GRACE)
    arrival = {EVENTS[i]["event_id"]: EVENTS[i]["clock"]["ms"] + int(lag * 1000) for i, lag in zip(order, lags_s)}
    items: list = []
    pending = sorted(EVENTS, key=lambda e: (arrival[e["event_id"]], e["event_id"]))
    for item in AUDIO_ITEMS:
        end_ms = item[1][0]["clock"]["ms"] + 100
        while pending and arrival[pending[0]["event_id"]] <= end_ms - 100:
            items.append(("event", pending.pop(0)))
        items.append(item)
    items += [("event", e) for e in pending]
    reference = final(run(MatchJoin("m", config), [("event", e) for e in EVENTS] + AUDIO_ITEMS))
    assert final(run(MatchJoin("m", config), items)) == reference
