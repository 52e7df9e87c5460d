"""The control room's API against the real broker, with a real composer (and worker) behind it."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from base64 import b64encode

import pytest

from infra.clients import make_producer, match_key
from schemas.codec import encode
from tests.controlroom_helpers import (
    BOB_TOKEN,
    TOKEN,
    Room,
    prefixed,
    produce_windows,
    records,
    start_room,
)
from tests.conftest import run_cli
from tests.music_samples import Spell, emotion_windows

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def room(kafka, tmp_path_factory):
    settings = prefixed(kafka.settings)
    started = start_room(settings, tmp_path_factory.mktemp("controlroom"), room_args=("--client-queue", "256"))
    try:
        yield started
    finally:
        started.stop()


def _music_until(room: Room, match_id: str, bars: int) -> dict:
    return room.wait_for(f"{bars} bars of {match_id}", lambda: (m := room.match(match_id)) and m["music"]
                         and m["music"]["bar"] >= bars and m)


def _controls(room: Room, match_id: str) -> list[dict]:
    return records(room.settings, "music.control.v1", "MusicControl", match_id=match_id)


def test_the_api_is_documented_and_guarded(room):
    from openapi_spec_validator import validate

    document = room.get("/api/v1/openapi.json", token=None)
    validate(document)
    paths = document["paths"]
    for path in ("/api/v1/matches", "/api/v1/matches/{match_id}", "/api/v1/matches/{match_id}/preferences",
                 "/api/v1/preferences", "/api/v1/matches/{match_id}/cues", "/api/v1/matches/{match_id}/highlights",
                 "/api/v1/highlights/{job_id}", "/api/v1/matches/{match_id}/audio"):
        assert path in paths, path
    docs = room.get("/docs", token=None)
    assert "/static/docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()

    status, body = room.request("GET", "/api/v1/matches", token=None)
    assert status == 401 and "missing bearer token" in body["detail"]
    status, body = room.request("GET", "/api/v1/matches", token="not-a-token-at-all")
    assert status == 401 and "unknown bearer token" in body["detail"]
    status, body = room.request("POST", "/api/v1/matches/m-x/cues", {"type": "goal"}, token=None)
    assert status == 401
    assert room.get("/api/v1/matches")["matches"] is not None
    assert room.request("GET", "/healthz", token=None)[0] == 200
    assert "crowdsound_controlroom_requests_total" in room.metrics()


def test_list_and_detail_follow_a_match_and_bad_bodies_get_422(room):
    produce_windows(room.settings, emotion_windows("m-list", [Spell(0, 20, "EXCITEMENT", 0.7, 0.4,
                                                                    events=[(12, "CARD", "AWAY")])]))
    detail = _music_until(room, "m-list", 3)
    listed = {m["match_id"]: m for m in room.get("/api/v1/matches")["matches"]}
    summary = listed["m-list"]
    assert summary["emotion"]["state"] == "EXCITEMENT" and summary["clock"]["period"] == "FIRST_HALF"
    assert summary["music"]["tempo_bpm"] > 0 and summary["music"]["key"] and summary["music"]["layers"]
    assert summary["music_behind_ms"] is not None
    assert len(detail["windows"]) >= 15 and detail["bars"][-1]["bar"] == detail["music"]["bar"]
    assert any(e["type"] == "CARD" for w in detail["windows"] for e in w["events"])

    for body, reason in (({"intensity_min": 0.9, "intensity_max": 0.2}, "above"), ({"style": "polka"}, "style"),
                         ({"tempo_min_bpm": 90}, "both"), ({"muted_layers": ["kazoo"]}, "muted_layers")):
        status, answer = room.request("PUT", "/api/v1/matches/m-list/preferences", body)
        assert status == 422 and reason in answer["detail"], (body, answer)
    for body, reason in (({"type": "boom"}, "type"), ({"type": "fade_out", "bars": 0}, "bars"), ({}, "type")):
        status, answer = room.request("POST", "/api/v1/matches/m-list/cues", body)
        assert status == 422 and reason in answer["detail"], (body, answer)
    status, answer = room.request("POST", "/api/v1/matches/m-nobody/cues", {"type": "goal"})
    assert status == 404 and "m-nobody" in answer["detail"]
    status, answer = room.request("POST", "/api/v1/matches/m-list/highlights", {"auto": 3, "ranges": ["1:00-2:00"]})
    assert status == 422 and "not both" in answer["detail"]
    status, answer = room.request("POST", "/api/v1/matches/m-list/highlights", {"ranges": ["2:00-1:00"]})
    assert status == 422 and "inverted" in answer["detail"]


def test_a_preferences_put_changes_the_music_from_the_next_bar(room):
    windows = emotion_windows("m-prefs", [Spell(0, 60, "CELEBRATION", 0.95, 0.8)])
    produce_windows(room.settings, windows[:20])
    _music_until(room, "m-prefs", 5)
    status, answer = room.request("PUT", "/api/v1/matches/m-prefs/preferences",
                                  {"style": "electronic", "muted_layers": ["drums"], "tempo_min_bpm": 100,
                                   "tempo_max_bpm": 110})
    assert status == 200 and answer["record"]["set_by"] == "alice", answer
    assert answer["in_force"]["style"] == "electronic"
    shown = room.wait_for("the preferences to read back", lambda: (p := room.get(
        "/api/v1/matches/m-prefs/preferences"))["record"] and p)
    assert shown["record"]["muted_layers"] == ["drums"] and shown["in_force"]["tempo_max_bpm"] == 110
    # The same record `crowdsound prefs show` reads.
    assert '"style": "electronic"' in run_cli("prefs", "show", "--match", "m-prefs", settings=room.settings).stdout
    last_before = _controls(room, "m-prefs")[-1]["bar"]
    time.sleep(1.0)  # the composer reads preferences before each poll
    produce_windows(room.settings, windows[20:])
    bars = room.wait_for("bars after the change", lambda: [
        r for r in _controls(room, "m-prefs") if r["kind"] == "BAR" and r["bar"] > last_before] or None)
    assert all(r["style"] == "electronic" and "drums" not in r["layers"] and 100 <= r["tempo_bpm"] <= 110
               for r in bars), bars
    assert all(r["style"] == "orchestral" for r in _controls(room, "m-prefs") if r["bar"] <= last_before)


def _stingers_of(room: Room, match_id: str, cue_id: str) -> list[dict]:
    return [r for r in _controls(room, match_id) if r["kind"] == "STINGER" and any(
        c["cue_id"] == cue_id for c in r["cues"])]


def test_a_goal_cue_lands_on_the_next_beat_once_also_through_a_composer_kill(room):
    settings = room.settings
    windows = emotion_windows("m-cue", [Spell(0, 90, "CALM", 0.25, 0.1)], wall_start_ms=int(time.time() * 1000))
    produce_windows(settings, windows[:20])
    _music_until(room, "m-cue", 4)
    time.sleep(1.0)
    chunks = records(settings, "music.audio.v1", "AudioChunk", match_id="m-cue")
    status, cue = room.request("POST", "/api/v1/matches/m-cue/cues", {"type": "goal"})
    assert status == 202 and cue["set_by"] == "alice" and cue["type"] == "goal", cue
    time.sleep(1.5)
    produce_windows(settings, windows[20:24])
    (stinger,) = room.wait_for("the goal stinger", lambda: _stingers_of(room, "m-cue", cue["cue_id"]) or None)
    assert stinger["stinger"] == "goal" and stinger["cues"][0]["set_by"] == "alice"
    later = records(settings, "music.audio.v1", "AudioChunk", match_id="m-cue")
    first_after = later[len(chunks)]  # the first beat the music reached after the cue arrived
    assert stinger["wall_time_ms"] == first_after["wall_time_ms"], (stinger["wall_time_ms"], first_after)
    # The page sees it fired, at which bar.
    fired = room.wait_for("the cue marked fired", lambda: [
        c for c in room.match("m-cue")["cues"] if c["cue_id"] == cue["cue_id"] and c["fired_bar"] is not None])
    assert fired[0]["fired_bar"] == stinger["bar"]

    # A second cue, then the composer is killed while it works; restarted, it plays each cue once.
    status, card = room.request("POST", "/api/v1/matches/m-cue/cues", {"type": "card"}, token=BOB_TOKEN)
    assert status == 202
    time.sleep(0.3)
    produce_windows(settings, windows[24:30])
    time.sleep(0.4)
    room.composer.stop(signal.SIGKILL)
    room.composer.start()
    produce_windows(settings, windows[30:])
    room.wait_for("the card stinger", lambda: _stingers_of(room, "m-cue", card["cue_id"]) or None, timeout_s=90)
    end_ms = windows[-1]["audio_wall_time_ms"] - 6000
    room.wait_for("the music to reach the end", lambda: room.match("m-cue")["bars"][-1]["x_ms"] >= end_ms,
                  timeout_s=90)
    assert len(_stingers_of(room, "m-cue", cue["cue_id"])) == 1
    assert [s["cues"][0]["set_by"] for s in _stingers_of(room, "m-cue", card["cue_id"])] == ["bob"]
    bars = [r["bar"] for r in _controls(room, "m-cue") if r["kind"] == "BAR"]
    assert bars == list(range(len(bars))), "a bar was lost or repeated across the kill"


def test_hold_keeps_intensity_and_key_through_a_goal_until_release(room):
    settings = room.settings
    windows = emotion_windows("m-hold", [Spell(0, 15, "CALM", 0.2, 0.0),
                                         Spell(15, 60, "CELEBRATION", 0.95, 0.8, events=[(18, "GOAL", "HOME")]),
                                         Spell(60, 90, "CELEBRATION", 0.95, 0.8)])
    produce_windows(settings, windows[:12])
    _music_until(room, "m-hold", 2)
    assert room.request("POST", "/api/v1/matches/m-hold/cues", {"type": "hold"})[0] == 202
    time.sleep(1.5)
    produce_windows(settings, windows[12:60])
    room.wait_for("the held music to reach the goal", lambda: room.match("m-hold")["music"]["bar"] >= 20)
    assert room.match("m-hold")["held"] is True
    assert room.request("POST", "/api/v1/matches/m-hold/cues", {"type": "release"})[0] == 202
    time.sleep(1.5)
    produce_windows(settings, windows[60:])
    room.wait_for("the release", lambda: room.match("m-hold")["held"] is False)
    controls = room.wait_for("bars after the release", lambda: (c := _controls(room, "m-hold")) and any(
        r["cues"] and r["cues"][0]["type"] == "RELEASE" for r in c) and c)
    bars = [r for r in controls if r["kind"] == "BAR"]
    held_at = next(i for i, r in enumerate(bars) if any(c["type"] == "HOLD" for c in r["cues"]))
    released_at = next(i for i, r in enumerate(bars) if any(c["type"] == "RELEASE" for c in r["cues"]))
    frozen = bars[held_at:released_at]
    assert len(frozen) >= 15
    before = bars[held_at - 1]
    assert {(r["intensity"], r["key"], r["mode"]) for r in frozen} == {(before["intensity"], before["key"],
                                                                        before["mode"])}
    goal = [r for r in controls if r["kind"] == "STINGER" and r["stinger"] == "goal"]
    assert goal and frozen[0]["bar"] <= goal[0]["bar"] <= frozen[-1]["bar"]  # the goal came during the hold
    assert "held by the operator" in frozen[-1]["reason"]
    room.wait_for("the music to follow the crowd again", lambda: any(
        r["kind"] == "BAR" and r["bar"] > bars[released_at]["bar"] + 1 and r["intensity"] > before["intensity"] + 0.2
        for r in _controls(room, "m-hold")))


def _raw_websocket(port: int, path: str, token: str) -> socket.socket:
    """A WebSocket that completes its handshake and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = b64encode(b"0123456789abcdef").decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: bearer, {token}\r\n\r\n").encode())
    assert b" 101 " in sock.recv(1024).split(b"\r\n")[0]
    return sock


def test_a_websocket_client_that_stops_reading_is_dropped_while_another_keeps_receiving(room):
    from websockets.sync.client import connect

    port = int(room.url.rsplit(":", 1)[1])
    path = "/api/v1/matches/m-ws/stream"
    received: list[str] = []
    with connect(f"ws://127.0.0.1:{port}{path}", subprotocols=["bearer", TOKEN], max_queue=None) as fast:
        _drop_the_slow_one(room, port, path, fast, received)


def _drop_the_slow_one(room: Room, port: int, path: str, fast, received: list[str]) -> None:
    def read() -> None:
        try:
            for message in fast:
                received.append(message)
        except Exception:  # noqa: BLE001 - closed at the end of the test
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    slow = _raw_websocket(port, path, TOKEN)
    try:
        room.wait_for("two clients", lambda: 'crowdsound_controlroom_websocket_clients{stream="match"} 2.0'
                      in room.metrics())
        producer = make_producer(room.settings)
        # Bigger than the kernel's socket buffers (up to 4 MiB on the server's side) can hold.
        events, player = 6000, "a long name " * 100
        for index in range(events):
            if index % 100 == 0:  # 1,000 events a second: a fast reader keeps up, a stopped one cannot
                producer.flush(10)
                time.sleep(0.1)
            event = {"match_id": "m-ws", "event_id": f"e-{index}", "type": "FOUL", "side": "HOME", "team": "Home FC",
                     "player": player, "outcome": None, "clock": {"period": "FIRST_HALF", "ms": index * 100},
                     "wall_time_ms": int(time.time() * 1000), "source": "tests"}
            producer.produce(room.settings.topic("match.events.v1"), key=match_key("m-ws"),
                             value=encode("MatchEvent", event))
        producer.flush(30)
        room.wait_for("the fast client to receive every event",
                      lambda: sum('"type":"event"' in m for m in received) >= events, timeout_s=60)
        metrics = room.wait_for("the slow client to be dropped", lambda: (m := room.metrics()) and
                                'crowdsound_controlroom_websocket_clients{stream="match"} 1.0' in m and m)
        dropped = re.findall(r'crowdsound_controlroom_websocket_dropped_total\{reason="(\w+)",stream="match"\} 1\.0',
                             metrics)
        assert len(dropped) == 1 and dropped[0] in ("queue_full", "send_timeout"), metrics
        assert '"type":"snapshot"' in received[0]
    finally:
        slow.close()


STADIUM = """
[match]
id = "room"
home = "Home FC"
away = "Away FC"
seed = 5
feed_delay = "0:02"
[periods]
pre_match = "0:03"
first_half = "0:35"
[[moments]]
at = "0:15"
kind = "goal"
side = "home"
"""


def test_a_synthetic_match_streamed_through_the_worker_shows_in_the_list_and_detail(room, tmp_path):
    from tests.controlroom_helpers import Process

    worker = Process(room.settings, tmp_path, "worker", "worker")
    try:
        (tmp_path / "match.toml").write_text(STADIUM)
        streamed = run_cli("stadium", "--script", str(tmp_path / "match.toml"), "--match", "m-stadium", "--fast",
                           "--quiet", "--spool-dir", str(tmp_path / "spool"), settings=room.settings)
        assert streamed.returncode == 0, streamed.stderr
        detail = room.wait_for("the match's music", lambda: (m := room.match("m-stadium")) and m["music"]
                               and m["clock"]["period"] == "FIRST_HALF" and m["clock"]["ms"] >= 25_000
                               and m["stingers"] and m,
                               timeout_s=120)
    finally:
        worker.stop()
    assert detail["home"] == "Home FC"  # teams come from the events that name them (here the home goal)
    listed = {m["match_id"]: m for m in room.get("/api/v1/matches")["matches"]}["m-stadium"]
    assert listed["clock_text"] and listed["emotion"]["state"] and listed["music"]["key"]
    assert any(e["type"] == "GOAL" and e["side"] == "HOME" for e in detail["events"])
    assert any(e["type"] == "GOAL" for w in detail["windows"] for e in w["events"])  # joined into the windows
    assert [s["stinger"] for s in detail["stingers"]] == ["goal"]

    # A highlight reel for it, as the page's "Build reel" asks: progress, then the files.
    status, job = room.request("POST", "/api/v1/matches/m-stadium/highlights", {"auto": 2})
    assert status == 202 and job["state"] in ("queued", "running") and job["requested_by"] == "alice", job
    done = room.wait_for("the reel", lambda: (j := room.get(job["url"]))["state"] in ("done", "failed") and j,
                         timeout_s=240)
    assert done["state"] == "done", done
    assert {"reel.wav", "timeline.png", "index.json"} <= set(done["files"])
    assert done["result"]["match_id"] == "m-stadium" and done["result"]["clips"]
    assert [j["job_id"] for j in room.get("/api/v1/matches/m-stadium/highlights")["jobs"]] == [job["job_id"]]
    import urllib.request

    request = urllib.request.Request(room.url + done["file_urls"]["timeline.png"],
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert urllib.request.urlopen(request, timeout=30).read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert room.request("GET", done["file_urls"]["timeline.png"], token=None)[0] == 401
    assert room.request("GET", f"{job['url']}/files/..%2F..%2Fetc%2Fpasswd")[0] == 404
