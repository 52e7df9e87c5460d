"""The control room page in a real browser: Debian's chromium, headless, driven by Playwright.

A composer and a control room run against the test broker while a match streams (emotion
windows produced four a second). The test looks at what a person sees and hears: the page
loads without console errors, the plot gains points, the goal button's cue shows as fired,
the preferences form round-trips, and the live music plays (the AudioContext runs and its
worklet plays samples with a level). A screenshot goes to the test artefacts
(``CROWDSOUND_TEST_ARTEFACTS``, default ``.crowdsound/test-artefacts/``).

Browsers are never downloaded: chromium comes from Debian (``make bootstrap`` and ``.ci/run``
install it). Without it the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.request

import numpy as np
import pytest

from tests.controlroom_helpers import ARTEFACTS, TOKEN, prefixed, produce_windows, start_room
from tests.music_samples import Spell, emotion_windows

pytestmark = pytest.mark.kafka

CHROMIUM = "/usr/bin/chromium"
# As the machine's notes require: no sandbox as root, and no background networking (the network is closed).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        message = "Debian's chromium and playwright are needed: apt-get install chromium; pip install playwright"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (.ci/run should have installed them)")
        pytest.skip(message)
    return sync_playwright


class _Stream(threading.Thread):
    """A live match: emotion windows produced in order, four a second, until stopped."""

    def __init__(self, settings, match_id: str) -> None:
        super().__init__(daemon=True)
        start = int(time.time() * 1000) - 30_000
        self.settings = settings
        self.windows = emotion_windows(match_id, [
            Spell(0, 30, "CALM", 0.2, 0.0), Spell(30, 90, "EXCITEMENT", 0.7, 0.4, events=[(40, "CARD", "AWAY")]),
            Spell(90, 400, "CHANTING", 0.6, 0.5, chant_bpm=120.0)], wall_start_ms=start)
        self.stopping = threading.Event()

    def run(self) -> None:
        from infra.clients import make_producer

        producer = make_producer(self.settings)
        for index, window in enumerate(self.windows):
            if self.stopping.is_set():
                return
            produce_windows(self.settings, [window], producer=producer)
            time.sleep(0.05 if index < 20 else 0.25)


def test_the_page_shows_the_match_live_fires_a_cue_keeps_preferences_and_plays_the_music(kafka, tmp_path):
    sync_playwright = _browser_or_skip()
    settings = prefixed(kafka.settings)
    room = start_room(settings, tmp_path)
    stream = _Stream(settings, "m-page")
    stream.start()
    errors: list[str] = []
    try:
        room.wait_for("music for the page", lambda: (m := room.match("m-page")) and m["music"])
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{room.url}/#token={TOKEN}")
                page.wait_for_selector("#matches li[data-match=m-page]")
                page.click("#matches li[data-match=m-page]")

                # The plot gains points while the match streams.
                page.wait_for_function("crowdsound.drawn.length > 0", timeout=30_000)
                first = page.evaluate("crowdsound.drawn.length")
                page.wait_for_function(f"crowdsound.drawn.length >= {first} + 8", timeout=30_000)
                assert page.evaluate("crowdsound.windows.size") > 20

                # The goal button: the cue shows as fired, at a bar.
                page.click("button[data-cue=goal]")
                fired = page.wait_for_selector("#cue-log li.fired", timeout=30_000).inner_text()
                assert fired.startswith("goal cue fired at bar "), fired

                # The preferences form round-trips (saved, then read back after a reload).
                page.select_option("#prefs-form select[name=style]", "electronic")
                page.check("#prefs-form input[name=mute][value=drums]")
                page.fill("#prefs-form input[name=tempo_min_bpm]", "100")
                page.fill("#prefs-form input[name=tempo_max_bpm]", "120")
                with page.expect_response(lambda r: r.url.endswith("/matches/m-page/preferences")
                                          and r.request.method == "PUT") as saved:
                    page.click("#prefs-form button[type=submit]")
                assert saved.value.status == 200, saved.value.text()
                page.wait_for_function("document.getElementById('prefs-status').textContent.includes('alice')")
                page.reload()
                page.click("#matches li[data-match=m-page]")
                page.wait_for_function(
                    "document.querySelector('#prefs-form select[name=style]').value === 'electronic'", timeout=30_000)
                assert page.is_checked("#prefs-form input[name=mute][value=drums]")
                assert page.input_value("#prefs-form input[name=tempo_max_bpm]") == "120"

                # The live music plays: the AudioContext runs and its worklet plays samples with a level.
                page.click("#play")
                page.wait_for_function("crowdsound.audio.played > 48000 && crowdsound.audio.rms > 0.001",
                                       timeout=45_000)
                assert page.evaluate("crowdsound.audio.context.state") == "running"
                assert page.evaluate("document.getElementById('level').value") > 0
                # ... and tools get it as an endless WAV over HTTP.
                request = urllib.request.Request(f"{room.url}/api/v1/matches/m-page/audio",
                                                 headers={"Authorization": f"Bearer {TOKEN}"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    head = response.read(44)
                    pcm = np.frombuffer(response.read(48_000 * 4), dtype="<i2")
                assert head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt " and np.abs(pcm).max() > 100
                ARTEFACTS.mkdir(parents=True, exist_ok=True)
                shot = tmp_path / "controlroom.png"
                page.screenshot(path=str(shot), full_page=True)
                shutil.copy(shot, ARTEFACTS / "controlroom.png")
            finally:
                browser.close()
    finally:
        stream.stopping.set()
        room.stop()
    assert not errors, errors
