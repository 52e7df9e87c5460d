"""``crowdsound demo`` (= ``make demo``): the whole platform on one machine in a few minutes.

Starts the local broker, applies the topic catalogue, starts a stream worker, a composer and
the control room (its address, with a one-off operator token, is printed first: open it to
watch and hear the match and fire cues), streams a scripted synthetic match in real time
(``--fast``: accelerated) through the venue encoder and the match feed, waits until the
emotions and the music have caught up, writes the live music with ``listen``, replays the
match's highlights into the output folder and prints what it found. The broker keeps running
afterwards (its topics hold the match for more replays); the other processes are stopped.

``--secure`` does the same on the secure broker (``broker up --secure``): ``security apply``
makes a principal per role, and every process runs as its role with its properties file
(``KAFKA_CONFIG_FILE``): the stadium as ``stadium``, the worker as ``worker``, the composer as
``composer``, the control room as ``controlroom``, listen and replay as ``reader``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.errors import CrowdsoundError
from infra.ports import free_port
from infra.progress import Progress
from infra.settings import Settings

__all__ = ["DemoOptions", "run_demo"]

DEMO_SCRIPT = Path(__file__).resolve().parent.parent / "producers" / "stadium" / "scripts" / "demo.toml"


@dataclass(frozen=True)
class DemoOptions:
    out_dir: Path
    script: Path = DEMO_SCRIPT
    highlights: int = 4
    style: str | None = None
    fast: bool = False  # stream the match accelerated instead of in real time
    port: int = 8080    # the control room's
    secure: bool = False  # on the secure broker, every process as its role


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "infra.cli", *args]


class _Background:
    """A crowdsound subprocess with its log in the demo's folder."""

    def __init__(self, name: str, args: list[str], log_dir: Path, **env: str) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(_cli(*args), stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True,
                                        env={**os.environ, "CROWDSOUND_LOG_LEVEL": "WARNING", **env})

    def check(self) -> None:
        if self.process.poll() is not None:
            raise CrowdsoundError(f"the {self.name} stopped (exit {self.process.returncode}); see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


class _Principals:
    """The settings and environment each demo process runs with: on the plaintext broker the
    same for all; on the secure one, each role's properties file."""

    def __init__(self, settings: Settings, folder: Path | None) -> None:
        self._settings = settings
        self._folder = folder

    def env(self, role: str) -> dict[str, str]:
        """The variables a process of ``role`` gets on top of this one's environment."""
        if self._folder is None:
            return {}
        return {"KAFKA_CONFIG_FILE": str(self._folder / f"{role}.properties")}

    def settings(self, role: str) -> Settings:
        if self._folder is None:
            return self._settings
        return self._settings.with_client_file(self._folder / f"{role}.properties")


def _start_broker(settings: Settings, secure: bool) -> tuple[Settings, _Principals]:
    """The broker up, its topics applied; with ``secure`` also the role principals. Returns the
    admin's settings and the principals of the processes."""
    from infra.broker import broker_up, default_security_dir
    from infra.clients import make_admin
    from infra.topics import apply_catalogue

    status, _ = broker_up(settings, secure=secure)
    _say(f"Kafka {status.kafka_version or ''} broker on {status.bootstrap} (data in {status.data_dir})")
    admin, principals = settings, _Principals(settings, None)
    if secure:
        from infra.security import admin_settings, apply_security

        admin = admin_settings(settings.with_overrides(bootstrap_servers=status.bootstrap))
        folder = default_security_dir(settings)
        changes = apply_security(make_admin(admin), admin, folder)
        _say(f"SASL_SSL with ACLs: {len(changes)} role principals ({sum(c.changed for c in changes)} changed), "
             f"their client properties in {folder}/")
        principals = _Principals(admin, folder)
    changes = apply_catalogue(make_admin(admin), admin)
    _say(f"topics: {sum(1 for c in changes if c.kind == 'created')} created, {len(changes)} in the catalogue")
    return admin, principals


def run_demo(settings: Settings, options: DemoOptions) -> int:
    from consumers.replay.live_record import write_live_record
    from consumers.replay.replay import ReplayOptions, replay
    from producers.stadium import load_script

    started = time.monotonic()
    script = load_script(options.script)
    match_id = f"{script.match_id}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
    options.out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.state_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)

    _, principals = _start_broker(settings, options.secure)
    worker = _Background("worker", ["worker"], log_dir, **principals.env("worker"))
    composer = _Background("composer", ["composer", "--instance", "demo"], log_dir, **principals.env("composer"))
    token = secrets.token_urlsafe(18)
    port = free_port(options.port)
    room = _Background("controlroom", ["controlroom", "--port", str(port)], log_dir,
                       CROWDSOUND_API_TOKENS=f"demo={token}", **principals.env("controlroom"))
    try:
        _say(f"worker, composer and control room started (logs in {log_dir})")
        _say(f"control room: http://127.0.0.1:{port}/#token={token}")
        _say("  open it to watch the match, press Play to hear it, fire a cue (operator 'demo')")
        pace = "accelerated" if options.fast else "in real time"
        _say(f"streaming the synthetic match {match_id} ({script.duration_ms / 1000:.0f} s of crowd audio, {pace})")
        stream = _Background("stadium", ["stadium", "--script", str(options.script), "--match", match_id, "--quiet",
                                         *(["--fast"] if options.fast else [])], log_dir, **principals.env("stadium"))
        # The music follows the stream as it goes (live, at the match's own pace).
        _wait_for_music(principals.settings("reader"), match_id, script.duration_ms, (worker, composer, room))
        if stream.process.wait() != 0:
            raise CrowdsoundError(f"streaming the match failed (exit {stream.process.returncode}); see {stream.log_path}")
        stream.stop()
        live = options.out_dir / "live.wav"
        subprocess.run(_cli("listen", "--match", match_id, "--out", str(live), "--timeout", "3"),
                       capture_output=True, text=True, check=False, env={**os.environ, **principals.env("reader")})
        live_files = write_live_record(principals.settings("reader"), match_id, options.out_dir)
        _say(f"the live music of the match: {live} (its bars and stingers: {', '.join(live_files)})")
    finally:
        worker.stop()
        composer.stop()
        room.stop()

    _say(f"replaying the {options.highlights} best highlights into {options.out_dir}/")
    result = replay(principals.settings("reader"), ReplayOptions(match_id=match_id, out_dir=options.out_dir,
                                                                 auto=options.highlights, style=options.style))
    print()
    print(f"crowdsound demo — match {match_id}, {time.monotonic() - started:.0f} s")
    print(f"  goals in the match feed: {result.goals}")
    print(f"  emotion windows: {result.windows}")
    print(f"  highlight clips: {len(result.clips)}")
    for clip in result.clips:
        stingers = f"  [stingers: {', '.join(clip.stingers)}]" if clip.stingers else ""
        print(f"    #{clip.rank} {clip.highlight.start}-{clip.highlight.end}  {clip.highlight.reason}{stingers}")
    print(f"  files written to {options.out_dir}/: live.wav, live.json, live.mid, " + ", ".join(result.files))
    print(f"  open {options.out_dir}/index.md and {options.out_dir}/timeline.png; listen to {options.out_dir}/reel.wav")
    print(f"  check the music like a supervisor would:  crowdsound audit {options.out_dir}")
    print()
    print("The broker keeps running with the match on its topics; try:")
    reader = f"KAFKA_CONFIG_FILE={principals.env('reader')['KAFKA_CONFIG_FILE']} " if options.secure else ""
    print(f"  {reader}crowdsound replay --match {match_id} --out out/electronic --style electronic --auto 3")
    print("Open the control room again (the match stays in its list for --lookback minutes):")
    print("  CROWDSOUND_API_TOKENS=demo=<token> crowdsound controlroom   then http://127.0.0.1:8080/#token=<token>")
    print("Stop it with:  crowdsound broker down   (or: make broker-down)")
    return 0


def _wait_for_music(settings: Settings, match_id: str, duration_ms: int, processes: tuple[_Background, ...]) -> None:
    """Follow the match's music until it reaches the end of the match's audio (the music
    follows the emotions, which follow the audio, so all three are then done)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from infra.clients import make_consumer, match_key, reader_group
    from infra.partitioning import partition_for
    from schemas.codec import decode

    consumer = make_consumer(settings, group_id=reader_group(settings, "demo"))
    topics = {settings.topic("music.audio.v1"): "AudioChunk"}
    partition = partition_for(match_key(match_id), settings.partitions)
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic in topics])
    music_s = 0.0
    total_s = duration_ms / 1000
    bar = Progress(total_s, "emotions and music", unit="s")
    last_change = time.monotonic()
    try:
        while music_s < total_s - 8:
            for process in processes:
                process.check()
            message = consumer.poll(0.5)
            if message is None or message.error():
                if time.monotonic() - last_change > 90:
                    raise CrowdsoundError("no emotions or music for 90 s; see the worker and composer logs in "
                                          f"{settings.state_dir / 'demo'}")
                continue
            if message.key() != match_key(match_id):
                continue
            record = decode(message.value(), expect=topics[message.topic()])  # type: ignore[arg-type]
            last_change = time.monotonic()
            if message.topic() == settings.topic("music.audio.v1"):
                music_s = (record["first_sample"] + record["samples_per_channel"]) / record["sample_rate"]
            bar.update(music_s, f"music {music_s:.0f} s")
    finally:
        bar.close()
        consumer.close()
