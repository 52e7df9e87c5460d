"""OAUTHBEARER for the stream worker: aiokafka gets its tokens the way librdkafka's OIDC method does.

Imported only when a client is configured with ``sasl.mechanism=OAUTHBEARER``
(:func:`infra.kafka_security.aiokafka_security`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping

from aiokafka.abc import AbstractTokenProvider

__all__ = ["OidcTokenProvider"]


class OidcTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER tokens for aiokafka, fetched as librdkafka's ``sasl.oauthbearer.method=oidc``
    fetches them: the client-credentials grant against the token endpoint (HTTP basic auth
    with the client id and secret), cached until shortly before they expire."""

    def __init__(self, *, endpoint: str, client_id: str, client_secret: str, scope: str | None = None,
                 extensions: Mapping[str, str] | None = None) -> None:
        self._endpoint = endpoint
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._extensions = dict(extensions or {})
        self._token: str | None = None
        self._renew_at = 0.0

    def __repr__(self) -> str:
        return f"OidcTokenProvider(endpoint={self._endpoint!r}, client_id={self._client_id!r})"

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> OidcTokenProvider:
        extensions = dict(item.split("=", 1) for item in properties.get("sasl.oauthbearer.extensions", "").split(",")
                          if "=" in item)
        return cls(endpoint=properties["sasl.oauthbearer.token.endpoint.url"],
                   client_id=properties["sasl.oauthbearer.client.id"],
                   client_secret=properties["sasl.oauthbearer.client.secret"],
                   scope=properties.get("sasl.oauthbearer.scope"), extensions=extensions)

    def fetch(self) -> str:
        """A valid access token (blocking; :meth:`token` runs it off the event loop)."""
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        form = {"grant_type": "client_credentials", **({"scope": self._scope} if self._scope else {})}
        basic = base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()
        request = urllib.request.Request(self._endpoint, data=urllib.parse.urlencode(form).encode(), headers={
            "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the configured endpoint
            body = json.loads(response.read())
        self._token = str(body["access_token"])
        # Renew at 80 % of the lifetime, as librdkafka does.
        self._renew_at = time.monotonic() + 0.8 * float(body.get("expires_in", 300))
        return self._token

    async def token(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.fetch)

    def extensions(self) -> dict[str, str]:
        return self._extensions
