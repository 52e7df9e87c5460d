"""Settings from the environment: defaults, pass-through client properties, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import SettingsError
from infra.settings import Settings


def test_defaults_reach_the_local_broker():
    settings = Settings.from_env({})
    assert settings.client_config() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    assert settings.partitions == 12
    assert settings.topic("crowd.audio.v1") == "crowd.audio.v1"
    assert settings.frame_helper is True
    assert Settings.from_env({"CROWDSOUND_FRAME_HELPER": "0"}).frame_helper is False


def test_security_and_pass_through_properties_reach_every_client():
    settings = Settings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9093,kafka-1:9093",
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "crowdsound",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_CLIENT_LINGER_MS": "20",
        "KAFKA_CLIENT_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "none",
        "CROWDSOUND_TOPIC_PREFIX": "staging.",
        "CROWDSOUND_STATE_DIR": "/var/lib/crowdsound",
    })
    config = settings.client_config()
    assert config["bootstrap.servers"] == "kafka-0:9093,kafka-1:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.username"] == "crowdsound" and config["sasl.password"] == "s3cret"
    assert config["linger.ms"] == "20"
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert settings.topic("crowd.audio.v1") == "staging.crowd.audio.v1"
    assert settings.state_dir == Path("/var/lib/crowdsound")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("env", "named"), [
    ({"CROWDSOUND_PARTITIONS": "twelve"}, "CROWDSOUND_PARTITIONS"),
    ({"CROWDSOUND_PARTITIONS": "0"}, "CROWDSOUND_PARTITIONS"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"CROWDSOUND_LOG_LEVEL": "LOUD"}, "CROWDSOUND_LOG_LEVEL"),
    ({"CROWDSOUND_BROKER_PORT": "70000"}, "CROWDSOUND_BROKER_PORT"),
    ({"CROWDSOUND_FRAME_HELPER": "maybe"}, "CROWDSOUND_FRAME_HELPER"),
])
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_api_tokens_are_kept_only_as_hashes_and_name_their_operator():
    from infra.settings import token_hash

    settings = Settings.from_env({"CROWDSOUND_API_TOKENS": "alice=alice-token-123456, bob = bob-token-1234567",
                                  "CROWDSOUND_API_PUBLIC_READ": "1",
                                  "CROWDSOUND_API_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert settings.api_tokens == {token_hash("alice-token-123456"): "alice", token_hash("bob-token-1234567"): "bob"}
    assert "alice-token" not in repr(settings) and "alice-token" not in str(settings.api_tokens)
    assert settings.api_public_read and settings.api_cors_origins == ("https://a.example", "https://b.example")
    defaults = Settings.from_env({})
    assert defaults.api_tokens == {} and not defaults.api_public_read and defaults.api_cors_origins == ()


@pytest.mark.parametrize(("raw", "message"), [
    ("alice", "pair 1 is not operator=token"),
    ("alice=alice-token-123456,=nobody-token-1234", "pair 2 is not operator=token"),
    ("alice=short", "shorter than 12"),
])
def test_bad_api_tokens_are_named_without_showing_the_token(raw, message):
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env({"CROWDSOUND_API_TOKENS": raw})
    assert "alice-token-123456" not in str(error.value) and "nobody-token" not in str(error.value)
