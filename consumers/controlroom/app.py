"""The control room's ASGI app: the page, the HTTP API under /api/v1, /metrics and /healthz.

Reads come from the :class:`TopicFollower`'s in-memory view of the topics (no database);
writes are the same records the CLI writes (``prefs set``, ``cue``), validated the same way,
with the operator's name from their token. OpenAPI is at /api/v1/openapi.json, its docs page
at /docs (served from the package, no CDN).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.websockets import WebSocket

from consumers.controlroom.auth import AccessDenied, read_access, websocket_operator, write_access
from consumers.controlroom.follower import AudioTap, TopicFollower
from consumers.controlroom.hub import Hub
from consumers.controlroom.jobs import HighlightJobs
from consumers.controlroom.live import LiveModel
from consumers.controlroom.metrics import CUES, MATCHES, REQUEST_SECONDS, REQUESTS
from consumers.cues import CUE_TYPES, MAX_FADE_BARS, cue_record, write_cue
from consumers.music.director import MusicPrefs
from consumers.music.types import LAYERS, SAMPLE_RATE, STYLES
from consumers.preferences import ALL_MATCHES
from consumers.prefs_cli import preferences_record
from infra.clients import make_producer, match_key, produce_and_wait
from infra.errors import CrowdsoundError, SchemaError
from infra.settings import Settings
from schemas.clock import parse_clock_range
from schemas.codec import encode

__all__ = ["ControlRoom", "create_app"]

log = logging.getLogger("crowdsound.controlroom")
STATIC = Path(__file__).resolve().parent / "static"
API = "/api/v1"
Reader = Annotated[str | None, Depends(read_access)]
Writer = Annotated[str, Depends(write_access)]


# -- bodies ------------------------------------------------------------------------------------
class PreferencesBody(BaseModel):
    """A Preferences record (music.preferences.v1), as `crowdsound prefs set` writes it; unset
    fields keep the defaults (a match's record overrides the global one field by field)."""

    model_config = ConfigDict(extra="forbid")
    style: Literal[STYLES] | None = None  # type: ignore[valid-type]
    intensity_min: float | None = Field(None, ge=0, le=1)
    intensity_max: float | None = Field(None, ge=0, le=1)
    tempo_min_bpm: float | None = Field(None, ge=40, le=240, description="give tempo_max_bpm too")
    tempo_max_bpm: float | None = Field(None, ge=40, le=240, description="give tempo_min_bpm too")
    muted_layers: list[Literal[LAYERS]] = Field(default_factory=list)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _tempo_pair(self) -> PreferencesBody:
        if (self.tempo_min_bpm is None) != (self.tempo_max_bpm is None):
            raise ValueError("give both tempo_min_bpm and tempo_max_bpm, or neither")
        return self


class CueBody(BaseModel):
    """An operator cue: a stinger on the next beat, hold/release, or a fade over `bars` from the next bar."""

    model_config = ConfigDict(extra="forbid")
    type: Literal[CUE_TYPES]  # type: ignore[valid-type]
    bars: int = Field(2, ge=1, le=MAX_FADE_BARS, description="length of a fade in bars")


class HighlightsBody(BaseModel):
    """The options of `crowdsound replay`: `auto` best highlights (default 5) or explicit `ranges`."""

    model_config = ConfigDict(extra="forbid")
    auto: int | None = Field(None, ge=1, le=50)
    ranges: list[str] = Field(default_factory=list, max_length=20, examples=[["23:00-25:30"]])
    style: Literal[STYLES] | None = None  # type: ignore[valid-type]
    from_audio: bool = False
    mix_crowd: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> HighlightsBody:
        if self.auto is not None and self.ranges:
            raise ValueError("give auto or ranges, not both")
        for text in self.ranges:
            try:
                parse_clock_range(text)
            except CrowdsoundError as error:
                raise ValueError(str(error)) from None
        return self


# -- the service -------------------------------------------------------------------------------
@dataclass
class ControlRoom:
    """What the app serves from: the live view, the fan-out hub, writers and jobs."""

    settings: Settings
    model: LiveModel
    hub: Hub
    follower: TopicFollower
    jobs: HighlightJobs
    audio_taps: dict[str, AudioTap]
    producer: Any = None  # made on the first write

    def writer(self) -> Any:
        """The producer of the operators' writes (one, made on the first write)."""
        if self.producer is None:
            self.producer = make_producer(self.settings)
        return self.producer


def _room(request: Request | WebSocket) -> ControlRoom:
    return request.app.state.room


def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable line (and the details for tools)."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts) or "invalid request",
                                                  "errors": json.loads(json.dumps(error.errors(), default=str))})


def _preferences_view(room: ControlRoom, match_id: str) -> dict[str, Any]:
    own, in_force = room.follower.preferences_of(match_id)
    return {"match_id": match_id, "record": own, "in_force": in_force}


def _write_preferences(room: ControlRoom, match_id: str | None, body: PreferencesBody, operator: str) -> dict[str, Any]:
    tempo = (body.tempo_min_bpm, body.tempo_max_bpm) if body.tempo_min_bpm is not None else None
    try:
        record = preferences_record(match_id=match_id, style=body.style, intensity_min=body.intensity_min,
                                    intensity_max=body.intensity_max, tempo_range=tempo,  # type: ignore[arg-type]
                                    muted_layers=body.muted_layers, set_by=operator)
    except SchemaError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    produce_and_wait(room.writer(), room.settings.topic("music.preferences.v1"), key=match_key(record["match_id"]),
                     value=encode("Preferences", record), what="preferences")
    own_global, _ = room.follower.preferences_of(ALL_MATCHES)
    in_force = MusicPrefs()
    for layer in ([own_global] if match_id is not None and own_global else []) + [record]:
        in_force = in_force.updated(layer)
    return {"match_id": record["match_id"], "record": record, "in_force": in_force.to_json()}


def create_app(room: ControlRoom, *, on_started: Callable[[], None] | None = None) -> FastAPI:
    """The app over ``room`` (its follower already read the preferences; the app starts it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        room.hub.attach(asyncio.get_running_loop())
        room.follower.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            room.follower.stop()
            room.jobs.stop()
            for tap in list(room.audio_taps.values()):
                tap.stop()

    app = FastAPIOffline(
        title="crowdsound control room", version="1", lifespan=lifespan, openapi_url=f"{API}/openapi.json",
        docs_url="/docs", redoc_url=None, static_url="/static/docs",
        description="The live crowd and music of every match, the music's preferences, operator cues "
        "and highlight reels. Reads need a bearer token unless CROWDSOUND_API_PUBLIC_READ=1; writes always do "
        "(tokens: CROWDSOUND_API_TOKENS). Two WebSockets are not listed below (OpenAPI does not describe them): "
        "`/api/v1/matches/{match_id}/stream` (JSON: a snapshot, then every emotion window, control message, "
        "event and cue of the match, with a heartbeat every 5 s) and `/api/v1/matches/{match_id}/audio` (a JSON "
        "format message, then binary s16le stereo 48 kHz PCM). WebSockets take the token as the subprotocol "
        "pair `bearer, <token>`.",
    )
    app.state.room = room
    app.state.settings = room.settings
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    if room.settings.api_cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(room.settings.api_cors_origins),
                           allow_methods=["GET", "PUT", "POST"], allow_headers=["Authorization", "Content-Type"])

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Any]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "other")
        REQUESTS.labels(method=request.method, route=route, status=str(response.status_code)).inc()
        REQUEST_SECONDS.observe(time.perf_counter() - started)
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        ok = room.follower.healthy()
        return Response("ok\n" if ok else f"unhealthy: {room.follower.error or 'the topic follower is stuck'}\n",
                        status_code=200 if ok else 503, media_type="text/plain")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        MATCHES.set(len(room.model.summaries()))
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # -- matches ---------------------------------------------------------------------------------
    @app.get(f"{API}/matches", summary="Matches seen recently", tags=["matches"])
    def matches(_: Reader) -> dict[str, Any]:
        """Every match heard of within the look-back: teams, clock, last emotion, the music's tempo,
        key, chord, intensity and layers, and how far the music is behind the venue."""
        return {"matches": room.model.summaries()}

    @app.get(f"{API}/matches/{{match_id}}", summary="One match, with its latest windows and bars", tags=["matches"])
    def match(match_id: str, _: Reader) -> dict[str, Any]:
        detail = room.model.detail(match_id)
        if detail is None:
            raise HTTPException(status_code=404, detail=f"no match {match_id!r} heard of recently")
        return {**detail, "preferences": _preferences_view(room, match_id)}

    # -- preferences -----------------------------------------------------------------------------
    @app.get(f"{API}/preferences", summary="The global preferences ('*')", tags=["preferences"])
    def global_preferences(_: Reader) -> dict[str, Any]:
        return _preferences_view(room, ALL_MATCHES)

    @app.put(f"{API}/preferences", summary="Set the global preferences", tags=["preferences"])
    def put_global_preferences(body: PreferencesBody, operator: Writer) -> dict[str, Any]:
        return _write_preferences(room, None, body, operator)

    @app.get(f"{API}/matches/{{match_id}}/preferences", summary="A match's preferences", tags=["preferences"])
    def match_preferences(match_id: str, _: Reader) -> dict[str, Any]:
        return _preferences_view(room, match_id)

    @app.put(f"{API}/matches/{{match_id}}/preferences", summary="Set a match's preferences (from its next bar)",
             tags=["preferences"])
    def put_match_preferences(match_id: str, body: PreferencesBody, operator: Writer) -> dict[str, Any]:
        return _write_preferences(room, match_id, body, operator)

    # -- cues ------------------------------------------------------------------------------------
    @app.post(f"{API}/matches/{{match_id}}/cues", status_code=202, summary="Fire an operator cue", tags=["cues"])
    def post_cue(match_id: str, body: CueBody, operator: Writer) -> dict[str, Any]:
        """A stinger sounds on the next beat the composer reaches; hold, release and fades take
        effect from the next bar. The control message that carries the cue out names it."""
        if not room.model.knows(match_id):
            raise HTTPException(status_code=404, detail=f"no match {match_id!r} heard of recently: no music to cue")
        record = cue_record(match_id, body.type, bars=body.bars, set_by=operator, source="controlroom")
        where = write_cue(room.settings, room.writer(), record)
        CUES.labels(type=body.type).inc()
        return {"cue_id": record["cue_id"], "match_id": match_id, "type": body.type, "bars": body.bars,
                "set_by": operator, **where}

    # -- live streams ----------------------------------------------------------------------------
    @app.websocket(f"{API}/matches/{{match_id}}/stream")
    async def stream(websocket: WebSocket, match_id: str) -> None:
        """Every emotion window (highest revision), control message, event and cue of the match, as
        JSON messages, after a snapshot; a heartbeat when nothing happens."""
        if not await _admit(websocket):
            return
        snapshot = {"type": "snapshot", "match_id": match_id, "match": room.model.detail(match_id),
                    "preferences": _preferences_view(room, match_id)}
        await room.hub.serve(websocket, "match", match_id, [json.dumps(snapshot, separators=(",", ":"))])

    @app.websocket(f"{API}/matches/{{match_id}}/audio")
    async def audio_socket(websocket: WebSocket, match_id: str) -> None:
        """The match's live music as binary messages of interleaved s16le stereo PCM at 48 kHz,
        after one JSON text message describing the format; starts about a second before now."""
        if not await _admit(websocket):
            return
        fmt = json.dumps({"type": "format", "encoding": "s16le", "sample_rate": SAMPLE_RATE, "channels": 2})
        with _audio_tap(room, match_id):
            await room.hub.serve(websocket, "audio", match_id, [fmt])

    @app.get(f"{API}/matches/{{match_id}}/audio", summary="The live music as a WAV stream", tags=["matches"],
             response_class=StreamingResponse, responses={200: {"content": {"audio/wav": {}}}})
    async def audio_http(request: Request, match_id: str, _: Reader) -> StreamingResponse:
        """An endless WAV (48 kHz stereo s16le) of the match's music from about a second ago, e.g.
        `curl -H 'Authorization: Bearer T' URL | ffplay -`. The WebSocket at the same path is what the page uses."""
        peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
        client = room.hub.subscribe("audio", match_id, peer)

        async def body() -> AsyncIterator[bytes]:
            with _audio_tap(room, match_id):
                try:
                    yield _wav_header()
                    while client.dropped is None and not await request.is_disconnected():
                        try:
                            yield await asyncio.wait_for(client.queue.get(), 5)
                        except TimeoutError:
                            continue
                finally:
                    room.hub.unsubscribe(client, match_id)

        return StreamingResponse(body(), media_type="audio/wav")

    # -- highlights ------------------------------------------------------------------------------
    @app.post(f"{API}/matches/{{match_id}}/highlights", status_code=202, summary="Build highlight music (a replay job)",
              tags=["highlights"])
    def post_highlights(match_id: str, body: HighlightsBody, operator: Writer) -> dict[str, Any]:
        job = room.jobs.submit(match_id, body.model_dump(), operator)
        return _job_view(job)

    @app.get(f"{API}/matches/{{match_id}}/highlights", summary="The match's highlight jobs", tags=["highlights"])
    def match_highlights(match_id: str, _: Reader) -> dict[str, Any]:
        return {"jobs": [_job_view(job) for job in room.jobs.of_match(match_id)]}

    @app.get(f"{API}/highlights/{{job_id}}", summary="A highlight job's progress and files", tags=["highlights"])
    def highlight_job(job_id: str, _: Reader) -> dict[str, Any]:
        job = room.jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no highlight job {job_id!r}")
        return _job_view(job)

    @app.get(f"{API}/highlights/{{job_id}}/files/{{name}}", summary="A file of a finished job", tags=["highlights"],
             response_class=FileResponse)
    def highlight_file(job_id: str, name: str, _: Reader) -> FileResponse:
        job = room.jobs.get(job_id)
        path = room.jobs.file_path(job, name) if job is not None else None
        if path is None or not path.is_file():
            raise HTTPException(status_code=404, detail=f"no file {name!r} in highlight job {job_id!r}")
        return FileResponse(path, filename=name)

    return app


def _job_view(job: Any) -> dict[str, Any]:
    return {**job.to_json(), "url": f"{API}/highlights/{job.job_id}",
            "file_urls": {name: f"{API}/highlights/{job.job_id}/files/{name}" for name in job.files}}


async def _admit(websocket: WebSocket) -> bool:
    """Accept the WebSocket; a missing or wrong token gets the reason and close code 4401."""
    try:
        _, subprotocol = websocket_operator(websocket)
    except AccessDenied as denied:
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "error", "status": 401, "reason": denied.detail}))
        await websocket.close(code=4401, reason=str(denied.detail)[:120])
        return False
    await websocket.accept(subprotocol=subprotocol)
    return True


class _audio_tap:  # noqa: N801 - used as a context manager, reads like a function
    """Share one AudioTap per match among its listeners; stop it when the last one leaves."""

    def __init__(self, room: ControlRoom, match_id: str) -> None:
        self.room, self.match_id = room, match_id

    def __enter__(self) -> None:
        taps = self.room.audio_taps
        if self.match_id not in taps or not taps[self.match_id].is_alive():
            hub, match_id = self.room.hub, self.match_id
            tap = AudioTap(self.room.settings, match_id,
                           lambda pcm, _chunk: hub.publish_threadsafe("audio", match_id, [pcm]))
            taps[match_id] = tap
            tap.start()

    def __exit__(self, *exc: object) -> None:
        if self.room.hub.count("audio", self.match_id) == 0:
            tap = self.room.audio_taps.pop(self.match_id, None)
            if tap is not None:
                tap.stop()


def _wav_header(sample_rate: int = SAMPLE_RATE, channels: int = 2) -> bytes:
    """A WAV header for a stream of unknown length (sizes at their maximum, as streaming players expect)."""
    import struct

    byte_rate = sample_rate * channels * 2
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, byte_rate, channels * 2, 16)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
