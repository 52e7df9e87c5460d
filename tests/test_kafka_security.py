"""The one conversion of client security: every protocol and mechanism, for confluent-kafka and aiokafka.

One table: the environment (and properties file) a user gives, the librdkafka properties every
confluent-kafka client gets, and the aiokafka arguments the Faust worker gets — or the one-line
error that refuses it. No broker needed; tests/test_security.py runs the same settings against
the real secure broker.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from infra.errors import SettingsError
from infra.settings import Settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA and a client certificate made the way `broker up --secure` makes them."""
    from infra.tls import ensure_ca, issue_client_certificate

    folder = tmp_path_factory.mktemp("pki")
    ca = ensure_ca(folder)
    client = issue_client_certificate(ca, folder, "worker")
    other = issue_client_certificate(ca, folder, "someone-else")
    return {"ca": str(ca.cert), "cert": str(client.cert), "key": str(client.key), "other_key": str(other.key)}


SCRAM = {"KAFKA_SASL_USERNAME": "worker", "KAFKA_SASL_PASSWORD": "pw-0123"}
OIDC = {"KAFKA_CLIENT_SASL_OAUTHBEARER_METHOD": "oidc", "KAFKA_CLIENT_SASL_OAUTHBEARER_CLIENT_ID": "crowdsound",
        "KAFKA_CLIENT_SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret",
        "KAFKA_CLIENT_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://idp.example/token"}

# (id, environment, librdkafka properties expected on every confluent-kafka client,
#  aiokafka arguments expected (ssl: "verify" | "no-hostname" | "none" | None), error)
TABLE = [
    ("plaintext", {}, {"security.protocol": "PLAINTEXT"},
     {"security_protocol": "PLAINTEXT", "ssl": None}, None),
    ("ssl", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "{ca}"},
     {"security.protocol": "SSL", "ssl.ca.location": "{ca}"},
     {"security_protocol": "SSL", "ssl": "verify"}, None),
    ("ssl-mtls", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "{ca}",
                  "KAFKA_CLIENT_SSL_CERTIFICATE_LOCATION": "{cert}", "KAFKA_CLIENT_SSL_KEY_LOCATION": "{key}"},
     {"security.protocol": "SSL", "ssl.certificate.location": "{cert}", "ssl.key.location": "{key}"},
     {"security_protocol": "SSL", "ssl": "verify", "client_cert": True}, None),
    ("ssl-no-hostname-check", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "{ca}",
                               "KAFKA_CLIENT_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "none"},
     {"ssl.endpoint.identification.algorithm": "none"}, {"security_protocol": "SSL", "ssl": "no-hostname"}, None),
    ("ssl-no-verification", {"KAFKA_SECURITY_PROTOCOL": "SSL",
                             "KAFKA_CLIENT_ENABLE_SSL_CERTIFICATE_VERIFICATION": "false"},
     {"enable.ssl.certificate.verification": "false"}, {"security_protocol": "SSL", "ssl": "none"}, None),
    ("sasl-ssl-scram-512", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                            "KAFKA_SSL_CA_LOCATION": "{ca}", **SCRAM},
     {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "worker",
      "sasl.password": "pw-0123"},
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "worker",
      "sasl_plain_password": "pw-0123", "ssl": "verify"}, None),
    ("sasl-ssl-scram-256", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "scram-sha-256", **SCRAM},
     {"sasl.mechanism": "SCRAM-SHA-256"},
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "ssl": "verify"}, None),
    ("sasl-ssl-scram-mtls", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                             "KAFKA_SSL_CA_LOCATION": "{ca}", "KAFKA_CLIENT_SSL_CERTIFICATE_LOCATION": "{cert}",
                             "KAFKA_CLIENT_SSL_KEY_LOCATION": "{key}", **SCRAM},
     {"ssl.certificate.location": "{cert}"},
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "ssl": "verify", "client_cert": True},
     None),
    ("sasl-plaintext-scram", {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                              **SCRAM},
     {"security.protocol": "SASL_PLAINTEXT"},
     {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "ssl": None}, None),
    ("sasl-ssl-plain", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", **SCRAM},
     {"sasl.mechanism": "PLAIN"}, {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "ssl": "verify"}, None),
    ("sasl-ssl-oauthbearer", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER", **OIDC},
     {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
      "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token"},
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER", "ssl": "verify", "oauth": True}, None),
    ("plain-without-tls", {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN", **SCRAM},
     None, None, "sends the password in clear text"),
    ("oauthbearer-without-tls", {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                                 **OIDC}, None, None, "sends the bearer token in clear text"),
    ("oauthbearer-not-oidc", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
     None, None, "sasl.oauthbearer.method=oidc"),
    ("oidc-incomplete", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                         "KAFKA_CLIENT_SASL_OAUTHBEARER_METHOD": "oidc"}, None, None,
     "needs sasl.oauthbearer.client.id"),
    ("sasl-without-mechanism", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **SCRAM}, None, None,
     "needs sasl.mechanism"),
    ("scram-without-password", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                "KAFKA_SASL_USERNAME": "worker"}, None, None, "needs sasl.password"),
    ("gssapi", {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, None, None,
     "not supported"),
    ("mechanism-without-sasl", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, None, None,
     "needs security.protocol SASL_SSL"),
    ("certificate-without-key", {"KAFKA_SECURITY_PROTOCOL": "SSL",
                                 "KAFKA_CLIENT_SSL_CERTIFICATE_LOCATION": "{cert}"}, None, None,
     "needs both ssl.certificate.location and ssl.key.location"),
    ("keystore-for-aiokafka", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_CLIENT_SSL_KEYSTORE_LOCATION": "/k.p12",
                               "KAFKA_CLIENT_SSL_KEYSTORE_PASSWORD": "x"},
     {"ssl.keystore.location": "/k.p12"}, None, "aiokafka) cannot use ssl.keystore.location"),
    ("mismatched-key", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_CLIENT_SSL_CERTIFICATE_LOCATION": "{cert}",
                        "KAFKA_CLIENT_SSL_KEY_LOCATION": "{other_key}"},
     {"ssl.key.location": "{other_key}"}, None, "cannot load the client certificate"),
]


def _fill(value, pki):
    if isinstance(value, dict):
        return {k: _fill(v, pki) for k, v in value.items()}
    return value.format(**pki) if isinstance(value, str) else value


@pytest.mark.parametrize(("env", "librdkafka", "aiokafka", "error"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_one_conversion_for_both_client_libraries(pki, env, librdkafka, aiokafka, error):
    env, librdkafka = _fill(env, pki), _fill(librdkafka, pki)
    if librdkafka is None:  # refused for every client, as the settings are read
        with pytest.raises(SettingsError, match=re.escape(error)):
            Settings.from_env(env)
        return
    settings = Settings.from_env(env)
    config = settings.client_config()
    assert {key: config.get(key) for key in librdkafka} == librdkafka
    if aiokafka is None:  # confluent-kafka takes it; the worker's aiokafka cannot
        with pytest.raises(SettingsError, match=re.escape(error)):
            settings.aiokafka_config()
        return
    arguments = settings.aiokafka_config()
    context = arguments.pop("ssl_context", None)
    expected = dict(aiokafka)
    kind, client_cert, oauth = expected.pop("ssl"), expected.pop("client_cert", False), expected.pop("oauth", False)
    assert {key: arguments.get(key) for key in expected} == expected
    if kind is None:
        assert context is None
    else:
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == (ssl.CERT_NONE if kind == "none" else ssl.CERT_REQUIRED)
        assert context.check_hostname is (kind == "verify")
        if "KAFKA_SSL_CA_LOCATION" in env:  # the CA given, and only it, is trusted
            assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", _ca_name(pki)),),)]
    if client_cert:
        _assert_presents_certificate(context, pki)
    provider = arguments.get("sasl_oauth_token_provider")
    assert (provider is not None) is oauth
    if oauth:
        assert "oidc-secret" not in repr(provider)


def _ca_name(pki) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(Path(pki["ca"]).read_bytes()).subject.rfc4514_string().split("=", 1)[1]


def _assert_presents_certificate(context: ssl.SSLContext, pki) -> None:
    """A TLS server that requires a client certificate from the CA accepts ``context``'s."""
    from infra.tls import ensure_ca, issue_server_certificate

    folder = Path(pki["ca"]).parent
    server_cert = issue_server_certificate(ensure_ca(folder), folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"])
    server.load_cert_chain(server_cert.cert, server_cert.key)
    server.verify_mode = ssl.CERT_REQUIRED
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with server.wrap_socket(connection, server_side=True) as tls:
            seen.append(dict(item[0] for item in tls.getpeercert()["subject"])["commonName"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(listener.getsockname()) as raw, \
            context.wrap_socket(raw, server_hostname="localhost"):
        pass
    thread.join(5)
    listener.close()
    assert seen == ["worker"]


def test_a_properties_file_is_read_like_kcat_reads_it_and_variables_override_it(tmp_path, pki):
    path = tmp_path / "client.properties"
    path.write_text("# a role's file\nbootstrap.servers = kafka:9093\nsecurity.protocol=sasl_ssl\n"
                    "sasl.mechanisms=SCRAM-SHA-512\nsasl.username=encoder\nsasl.password=pw=with=equals\n"
                    f"ssl.ca.location={pki['ca']}\n! another comment\nlinger.ms=50\n")
    settings = Settings.from_env({"KAFKA_CONFIG_FILE": str(path)})
    config = settings.client_config()
    assert config["bootstrap.servers"] == "kafka:9093"
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == "pw=with=equals" and config["linger.ms"] == "50"
    assert "sasl.mechanisms" not in config
    overridden = Settings.from_env({"KAFKA_CONFIG_FILE": str(path), "KAFKA_BOOTSTRAP_SERVERS": "other:9093",
                                    "KAFKA_CLIENT_LINGER_MS": "5"}).client_config()
    assert overridden["bootstrap.servers"] == "other:9093" and overridden["linger.ms"] == "5"


@pytest.mark.parametrize(("content", "message"), [
    (None, "No such file"),
    ("bootstrap.servers\n", "line 1: expected name=value"),
    ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=p\n",
     "clear text"),
])
def test_a_bad_properties_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.properties"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"KAFKA_CONFIG_FILE": str(path)})


def test_secrets_never_appear_in_repr(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=u\n"
                    "sasl.password=file-secret\n")
    settings = Settings.from_env({"KAFKA_CONFIG_FILE": str(path), "KAFKA_CLIENT_SSL_KEY_PASSWORD": "key-secret",
                                  "KAFKA_CLIENT_SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-secret",
                                  "KAFKA_CLIENT_LINGER_MS": "20"})
    text = repr(settings)
    for secret in ("file-secret", "key-secret", "oidc-secret"):
        assert secret not in text
    assert "linger.ms': '20'" in text and "[redacted]" in text
    from streams.app import _broker_credentials

    assert "file-secret" not in repr(_broker_credentials(settings))


def test_the_worker_gets_faust_credentials_from_the_same_conversion(pki):
    import faust

    from streams.app import _broker_credentials

    scram = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                               "KAFKA_SSL_CA_LOCATION": pki["ca"], **SCRAM})
    credentials = _broker_credentials(scram)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "worker" and credentials.password == "pw-0123"
    mtls = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": pki["ca"],
                              "KAFKA_CLIENT_SSL_CERTIFICATE_LOCATION": pki["cert"],
                              "KAFKA_CLIENT_SSL_KEY_LOCATION": pki["key"]})
    assert isinstance(_broker_credentials(mtls), faust.SSLCredentials)
    oauth = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER", **OIDC})
    assert isinstance(_broker_credentials(oauth), faust.OAuthCredentials)
    assert _broker_credentials(Settings.from_env({})) is None


def test_oidc_tokens_for_aiokafka_come_from_the_token_endpoint_as_librdkafka_gets_them():
    requests: list[dict] = []

    class TokenEndpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            requests.append({"auth": self.headers["Authorization"], "form": parse_qs(body)})
            payload = json.dumps({"access_token": f"token-{len(requests)}", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings.from_env({
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER", **OIDC,
            "KAFKA_CLIENT_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}/token",
            "KAFKA_CLIENT_SASL_OAUTHBEARER_SCOPE": "kafka", "KAFKA_CLIENT_SASL_OAUTHBEARER_EXTENSIONS": "tenant=a"})
        provider = settings.aiokafka_config()["sasl_oauth_token_provider"]
        import asyncio

        assert asyncio.run(provider.token()) == "token-1"
        assert asyncio.run(provider.token()) == "token-1"  # cached until 80 % of its life
        assert provider.extensions() == {"tenant": "a"}
    finally:
        server.shutdown()
    assert len(requests) == 1
    assert requests[0]["auth"] == "Basic " + base64.b64encode(b"crowdsound:oidc-secret").decode()
    assert requests[0]["form"] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


@pytest.mark.parametrize(("code", "text", "refused"), [
    ("_AUTHENTICATION", "sasl_ssl://b:9094/bootstrap: SASL authentication error: Authentication failed during "
     "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 310ms in state AUTH_REQ)",
     "refused the credentials"),
    ("_AUTHENTICATION", "GroupCoordinator: SASL authentication error: SaslAuthenticateRequest failed: Local: Broker "
     "transport failure (after 0ms in state DOWN)", None),
    ("_SSL", "sasl_ssl://b:9094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
     "failed: broker certificate could not be verified", "not trusted"),
    ("_SSL", "sasl_ssl://b:9094/bootstrap: SSL handshake failed: Disconnected", None),
    ("TOPIC_AUTHORIZATION_FAILED", "Broker: Topic authorization failed", "not authorized"),
    ("_TRANSPORT", "Connection refused", None),
])
def test_only_a_real_refusal_stops_a_client(code, text, refused):
    """Wrong credentials, an untrusted certificate or a missing ACL stop a process with one line;
    a connection that broke (even during the handshake) is retried like any other."""
    from confluent_kafka import KafkaError

    from infra.clients import kafka_refusal

    settings = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                  **SCRAM})
    message = kafka_refusal(KafkaError(getattr(KafkaError, code), text), settings)
    if refused is None:
        assert message is None
    else:
        assert refused in message
        assert code == "_SSL" or "user worker" in message  # who was refused
