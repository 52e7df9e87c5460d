"""Fan-out to WebSocket clients: every client gets its own bounded queue, a slow one is dropped.

The follower thread hands each message over once (:meth:`Hub.publish_threadsafe`); the hub
encodes it once and offers it to every client of the match. A client that still has ``queue_size``
messages waiting when more arrive (it reads slower than the match produces) or whose socket has not taken a message for
``send_timeout_s`` (it stopped reading) is dropped with the reason in a last message and in
the close frame — it never slows the others, who each have their own queue and sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from consumers.controlroom.metrics import WEBSOCKET_CLIENTS, WEBSOCKET_DROPPED, WEBSOCKET_MESSAGES

__all__ = ["Hub"]

log = logging.getLogger("crowdsound.controlroom")

_CLOSE_POLICY = 1008  # "policy violation": the client did not keep up


@dataclass(eq=False)
class _Client:
    stream: str
    queue: asyncio.Queue[str | bytes]
    peer: str
    dropped: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def drop(self, reason: str, label: str) -> None:
        if self.dropped is None:
            self.dropped = reason
            WEBSOCKET_DROPPED.labels(stream=self.stream, reason=label).inc()
            log.warning("dropping %s client %s: %s", self.stream, self.peer, reason)
            if self.task is not None:
                self.task.cancel()


class Hub:
    """Clients per (stream, match); ``stream`` is ``match`` (JSON messages) or ``audio`` (PCM bytes)."""

    def __init__(self, *, queue_size: int = 512, send_timeout_s: float = 10.0, heartbeat_s: float = 5.0) -> None:
        self.queue_size = queue_size
        self.send_timeout_s = send_timeout_s
        self.heartbeat_s = heartbeat_s
        self.clients: dict[tuple[str, str], set[_Client]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def publish_threadsafe(self, stream: str, match_id: str, messages: list[dict[str, Any] | bytes]) -> None:
        """From any thread: queue ``messages`` for every client of the match (no-op without clients)."""
        if self.loop is not None and (stream, match_id) in self.clients:
            self.loop.call_soon_threadsafe(self.publish, stream, match_id, messages)

    def publish(self, stream: str, match_id: str, messages: list[dict[str, Any] | bytes]) -> None:
        clients = self.clients.get((stream, match_id))
        if not clients:
            return
        encoded = [m if isinstance(m, bytes) else json.dumps(m, separators=(",", ":")) for m in messages]
        for client in list(clients):
            # A burst (a batch read after a pause) may exceed the limit once; a client that still
            # has the limit waiting when more arrives has not been keeping up.
            if client.queue.qsize() >= self.queue_size:
                client.drop(f"the client read too slowly: {client.queue.qsize()} messages waiting", "queue_full")
                continue
            for data in encoded:
                client.queue.put_nowait(data)

    def count(self, stream: str, match_id: str) -> int:
        return len(self.clients.get((stream, match_id), ()))

    def subscribe(self, stream: str, match_id: str, peer: str, first: tuple[str | bytes, ...] = ()) -> _Client:
        """A new client of the match's ``stream``: ``first`` queued, then everything published from now."""
        client = _Client(stream, asyncio.Queue(), peer)
        for item in first:
            client.queue.put_nowait(item)
        self.clients.setdefault((stream, match_id), set()).add(client)
        WEBSOCKET_CLIENTS.labels(stream=stream).inc()
        return client

    def unsubscribe(self, client: _Client, match_id: str) -> None:
        members = self.clients.get((client.stream, match_id))
        if members is not None and client in members:
            members.discard(client)
            if not members:
                del self.clients[(client.stream, match_id)]
            WEBSOCKET_CLIENTS.labels(stream=client.stream).dec()

    async def serve(self, websocket: WebSocket, stream: str, match_id: str, first: list[str | bytes]) -> None:
        """Send ``first`` then everything published for the match until the client leaves or is dropped."""
        peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
        client = self.subscribe(stream, match_id, peer, tuple(first))
        client.task = asyncio.current_task()
        receiver = asyncio.create_task(self._receive(websocket))
        try:
            await self._send(websocket, client, receiver)
        except asyncio.CancelledError:
            if client.dropped is None:
                raise  # the server is stopping
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away
        finally:
            receiver.cancel()
            self.unsubscribe(client, match_id)
        if client.dropped is not None:
            await self._close(websocket, client.dropped)

    async def _send(self, websocket: WebSocket, client: _Client, receiver: asyncio.Task[None]) -> None:
        while not receiver.done():
            try:
                data = await asyncio.wait_for(client.queue.get(), self.heartbeat_s)
            except TimeoutError:
                data = json.dumps({"type": "heartbeat", "time_ms": int(time.time() * 1000)})
            try:
                if isinstance(data, bytes):
                    await asyncio.wait_for(websocket.send_bytes(data), self.send_timeout_s)
                else:
                    await asyncio.wait_for(websocket.send_text(data), self.send_timeout_s)
            except TimeoutError:
                client.drop(f"the client stopped reading: a message waited {self.send_timeout_s:g} s", "send_timeout")
                return
            WEBSOCKET_MESSAGES.labels(stream=client.stream).inc()

    @staticmethod
    async def _receive(websocket: WebSocket) -> None:
        # The client sends nothing we need; reading notices when it leaves.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

    @staticmethod
    async def _close(websocket: WebSocket, reason: str) -> None:
        # A client that stopped reading may never take these: do not wait for it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.send_text(json.dumps({"type": "dropped", "reason": reason})), 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=_CLOSE_POLICY, reason=reason[:120]), 1.0)
