"""Kafka client security in one place: librdkafka properties in, checks and aiokafka arguments out.

The settings object (:mod:`infra.settings`) gathers every client property under librdkafka's
names — from ``KAFKA_CONFIG_FILE`` (a properties file, as ``kcat -F`` reads), the
``KAFKA_SECURITY_PROTOCOL``/``KAFKA_SASL_*``/``KAFKA_SSL_CA_LOCATION`` variables and the
``KAFKA_CLIENT_*`` pass-through. confluent-kafka clients take those properties as they are.
This module is the one conversion of them:

- :func:`check_security` refuses what would not work or would leak a secret (PLAIN or a bearer
  token without TLS, SASL without a mechanism or credentials, half an mTLS key pair), with a
  one-line message;
- :func:`aiokafka_security` turns them into the arguments of aiokafka's clients (the Faust
  worker's): security protocol, SASL mechanism and credentials, an :class:`ssl.SSLContext`
  with the CA, the client certificate (mTLS), hostname and certificate verification as
  librdkafka would apply them, and an OAUTHBEARER token provider doing what librdkafka's
  ``sasl.oauthbearer.method=oidc`` does. A security property aiokafka cannot honour is an
  error, never silently dropped;
- :func:`is_secret_name` is the one rule for which property names hold secrets (masked in
  ``repr`` and logs, kept in a Secret by the Helm chart).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.errors import SettingsError

__all__ = [
    "MECHANISMS",
    "PROTOCOLS",
    "aiokafka_security",
    "check_security",
    "is_secret_name",
    "normalise",
    "read_properties_file",
    "redacted",
]

PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
# A property whose name has one of these words holds a secret, or may (a key file's path is
# masked too: cheap, and the rule stays one line the chart can repeat).
_SECRET_WORDS = re.compile(r"password|secret|token|key|jaas|credential", re.IGNORECASE)
_MASK = "[redacted]"
_ALIASES = {"sasl.mechanisms": "sasl.mechanism"}
_OIDC = ("sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.token.endpoint.url")
# Security properties the aiokafka conversion honours; any other ssl.*/sasl.* property is refused
# for the worker rather than ignored.
_AIOKAFKA_SECURITY = {
    "sasl.mechanism", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.ca.pem", "ssl.certificate.location", "ssl.certificate.pem", "ssl.key.location",
    "ssl.key.pem", "ssl.key.password", "ssl.endpoint.identification.algorithm", "ssl.cipher.suites",
    "enable.ssl.certificate.verification", "sasl.oauthbearer.method", "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions", *_OIDC,
}


def is_secret_name(name: str) -> bool:
    """Whether a client property (``ssl.key.password``) or variable (``KAFKA_SASL_PASSWORD``)
    holds a secret by its name: it contains password, secret, token, key, jaas or credential."""
    return bool(_SECRET_WORDS.search(name))


def redacted(properties: Mapping[str, str]) -> dict[str, str]:
    """``properties`` with every secret value replaced by ``[redacted]`` (for repr and logs)."""
    return {key: (_MASK if is_secret_name(key) else value) for key, value in properties.items()}


def normalise(properties: Mapping[str, str]) -> dict[str, str]:
    """librdkafka's aliases folded (``sasl.mechanisms`` -> ``sasl.mechanism``), protocol and
    mechanism upper-cased, as librdkafka reads them."""
    result: dict[str, str] = {}
    for key, value in properties.items():
        key = _ALIASES.get(key, key)
        result[key] = value.strip().upper() if key in ("security.protocol", "sasl.mechanism") else value
    return result


def read_properties_file(path: Path) -> dict[str, str]:
    """A librdkafka/Java properties file: ``name=value`` lines, ``#`` and ``!`` comments.

    Raises
    ------
    SettingsError
        The file cannot be read or a line is not ``name=value``; the message names the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"KAFKA_CONFIG_FILE={path}: {exc.strerror or exc}") from None
    properties: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"KAFKA_CONFIG_FILE={path} line {number}: expected name=value, got {line[:40]!r}")
        properties[name.strip()] = value.strip()
    return normalise(properties)


def check_security(properties: Mapping[str, str]) -> None:
    """Refuse client security settings that cannot work or would send a secret in clear text.

    Raises
    ------
    SettingsError
        With one line saying what is wrong and what to set instead.
    """
    protocol = properties.get("security.protocol", "PLAINTEXT")
    mechanism = properties.get("sasl.mechanism")
    if protocol not in PROTOCOLS:
        raise SettingsError(f"security.protocol={protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not protocol.startswith("SASL"):
        if mechanism:
            raise SettingsError(f"sasl.mechanism={mechanism} needs security.protocol SASL_SSL (it is {protocol})")
    else:
        if not mechanism:
            raise SettingsError(f"security.protocol={protocol} needs sasl.mechanism (KAFKA_SASL_MECHANISM): "
                                f"one of {', '.join(MECHANISMS)}")
        if mechanism not in MECHANISMS:
            raise SettingsError(f"sasl.mechanism={mechanism} is not supported by crowdsound's clients: "
                                f"use one of {', '.join(MECHANISMS)}")
        if protocol == "SASL_PLAINTEXT" and mechanism in ("PLAIN", "OAUTHBEARER"):
            what = "password" if mechanism == "PLAIN" else "bearer token"
            raise SettingsError(f"sasl.mechanism={mechanism} over SASL_PLAINTEXT sends the {what} in clear text: "
                                "use security.protocol=SASL_SSL")
        if mechanism == "OAUTHBEARER":
            if properties.get("sasl.oauthbearer.method", "").lower() != "oidc":
                raise SettingsError("sasl.mechanism=OAUTHBEARER needs sasl.oauthbearer.method=oidc (client credentials "
                                    "from a token endpoint, which every crowdsound client can use)")
            missing = [name for name in _OIDC if not properties.get(name)]
            if missing:
                raise SettingsError(f"sasl.oauthbearer.method=oidc needs {', '.join(missing)}")
        else:
            missing = [name for name in ("sasl.username", "sasl.password") if not properties.get(name)]
            if missing:
                raise SettingsError(f"sasl.mechanism={mechanism} needs {' and '.join(missing)} "
                                    "(KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD or the properties file)")
    has_cert = bool(properties.get("ssl.certificate.location") or properties.get("ssl.certificate.pem"))
    has_key = bool(properties.get("ssl.key.location") or properties.get("ssl.key.pem"))
    if has_cert != has_key:
        raise SettingsError("a client certificate (mutual TLS) needs both ssl.certificate.location and "
                            "ssl.key.location (or their .pem forms)")
    if has_cert and protocol not in ("SSL", "SASL_SSL"):
        raise SettingsError(f"a client certificate needs security.protocol SSL or SASL_SSL (it is {protocol})")


def _ssl_context(properties: Mapping[str, str]) -> ssl.SSLContext:
    """The SSLContext librdkafka would build from the same ``ssl.*`` properties."""
    ca = properties.get("ssl.ca.location")
    if ca in (None, "", "probe"):
        context = ssl.create_default_context(cadata=properties.get("ssl.ca.pem"))
        if properties.get("ssl.ca.pem"):
            context.load_default_certs()
    elif Path(ca).is_dir():
        context = ssl.create_default_context(capath=ca, cadata=properties.get("ssl.ca.pem"))
    else:
        try:
            context = ssl.create_default_context(cafile=ca, cadata=properties.get("ssl.ca.pem"))
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"ssl.ca.location={ca}: {getattr(exc, 'strerror', None) or exc}") from None
    if properties.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if properties.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if properties.get("ssl.cipher.suites"):
        context.set_ciphers(properties["ssl.cipher.suites"])
    _load_client_certificate(context, properties)
    return context


def _load_client_certificate(context: ssl.SSLContext, properties: Mapping[str, str]) -> None:
    cert, key = properties.get("ssl.certificate.location"), properties.get("ssl.key.location")
    inline = {"cert": properties.get("ssl.certificate.pem"), "key": properties.get("ssl.key.pem")}
    if not (cert or inline["cert"]):
        return
    # Python's ssl module loads certificates from files only: inline PEMs go through a private
    # temporary folder, removed at once.
    with tempfile.TemporaryDirectory(prefix="crowdsound-tls-") as folder:
        for name, pem in inline.items():
            if pem:
                path = Path(folder) / f"{name}.pem"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(pem.replace("\\n", "\n"))
                if name == "cert":
                    cert = str(path)
                else:
                    key = str(path)
        try:
            context.load_cert_chain(cert, key, properties.get("ssl.key.password"))  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"cannot load the client certificate {cert} with key {key}: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None


def aiokafka_security(properties: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin clients.

    Raises
    ------
    SettingsError
        A security property aiokafka cannot honour (e.g. a PKCS#12 key store), or an unusable file.
    """
    check_security(properties)
    unsupported = sorted(key for key in properties
                         if (key.startswith(("ssl.", "sasl.", "enable.ssl.")) and key not in _AIOKAFKA_SECURITY))
    if unsupported:
        raise SettingsError(f"the stream worker's Kafka client (aiokafka) cannot use {', '.join(unsupported)}: "
                            "give TLS as PEM files (ssl.ca.location, ssl.certificate.location, ssl.key.location)")
    protocol = properties.get("security.protocol", "PLAINTEXT")
    arguments: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        arguments["ssl_context"] = _ssl_context(properties)
    if protocol.startswith("SASL"):
        mechanism = properties["sasl.mechanism"]
        arguments["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            from infra.oauth import OidcTokenProvider

            arguments["sasl_oauth_token_provider"] = OidcTokenProvider.from_properties(properties)
        else:
            arguments["sasl_plain_username"] = properties["sasl.username"]
            arguments["sasl_plain_password"] = properties["sasl.password"]
    return arguments
