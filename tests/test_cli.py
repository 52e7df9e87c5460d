"""The command line as a user meets it: help that explains, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from infra.ports import free_port
from tests.conftest import run_cli


def test_help_explains_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("broker", "topics", "tail"):
        assert command in result.stdout
    for args in (("broker", "--help"), ("topics", "apply", "--help"), ("tail", "--help")):
        sub = run_cli(*args)
        assert sub.returncode == 0 and len(sub.stdout.splitlines()) > 3, args


@pytest.mark.parametrize("args", [
    ("nonsense",),
    ("broker", "sideways"),
    ("broker", "up", "--port", "http"),
    ("tail",),
    ("tail", "crowd.audio.v1", "--max", "-3"),
    ("audit", "/no/such/folder"),
    ("audit", "/"),  # a folder, but not a replay folder
    ("composer", "--gather-ms", "-5"),
    ("composer", "--gather-ms", "soon"),
])
def test_bad_arguments_give_one_line_and_a_non_zero_exit(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_topic_is_one_line_naming_it():
    result = run_cli("tail", "crowd.audoi.v1", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "crowd.audoi.v1" in result.stderr


def test_bad_environment_is_one_line_naming_the_variable():
    result = run_cli("broker", "status", env={"CROWDSOUND_PARTITIONS": "many"})
    assert result.returncode == 1 and "CROWDSOUND_PARTITIONS" in result.stderr and "Traceback" not in result.stderr


def _path_with_only(tmp_path: Path, *programs: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in programs:
        found = shutil.which(program)
        assert found, f"{program} is needed for this test"
        (bin_dir / program).symlink_to(found)
    return str(bin_dir)


def _unused_broker_port() -> str:
    """A port nothing listens on, nor on the next (the broker's controller): `broker up` checks
    its ports before Java and Maven, and a fixed port was once taken by another process in CI."""
    while True:
        port = free_port()
        if port < 65535 and free_port(port + 1) == port + 1:
            return str(port)


def test_missing_java_is_one_line_naming_what_to_install(tmp_path):
    env = {"PATH": _path_with_only(tmp_path), "JAVA_HOME": "", "CROWDSOUND_STATE_DIR": str(tmp_path / "state"),
           "CROWDSOUND_BROKER_PORT": _unused_broker_port()}
    result = run_cli("broker", "up", env=env)
    assert result.returncode == 1
    assert "Java" in result.stderr and "17" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_maven_is_one_line_naming_what_to_install(tmp_path):
    java = Path(os.path.realpath(shutil.which("java") or "java"))
    env = {"PATH": _path_with_only(tmp_path, "java"), "JAVA_HOME": str(java.parent.parent),
           "CROWDSOUND_STATE_DIR": str(tmp_path / "state"), "CROWDSOUND_BROKER_PORT": _unused_broker_port()}
    result = run_cli("broker", "up", env=env)
    assert result.returncode == 1
    assert "Maven" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_down_with_nothing_running_is_harmless(tmp_path):
    result = run_cli("broker", "down", "--port", "39990", env={"CROWDSOUND_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0 and "no broker running" in result.stdout
    status = run_cli("broker", "status", "--port", "39990", env={"CROWDSOUND_STATE_DIR": str(tmp_path)})
    assert status.returncode == 0 and "stopped" in status.stdout
