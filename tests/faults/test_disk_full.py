"""The venue encoder's spool on a disk that fills up while the broker is unreachable.

Two ways to run out of disk: a small tmpfs (a real ENOSPC; needs root to mount, skipped
otherwise) and a file-size limit on the encoder process (RLIMIT_FSIZE: EFBIG, as a quota
would). Promised: no crash and no traceback, one clear log line saying the disk is full and
frames are being dropped, every frame that fitted kept whole, and the next run (broker back)
sends them all before its own.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
import soundfile

from schemas.codec import decode
from tests.conftest import REPO
from tests.faults.pipeline import read_all, record_figures
from tests.kafka_helpers import cli_env

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

LIMIT = 1024 * 1024  # 1 MiB of spool: ~100 frames of 100 ms mono PCM (the test sends 100 ms frames)


def _tone(path, seconds: float) -> None:
    t = np.arange(int(seconds * 48_000)) / 48_000
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48_000)


def _tmpfs(folder):
    """A 1 MiB tmpfs at ``folder`` (root only), unmounted by the caller."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    return folder


@pytest.mark.parametrize("disk", ["file-size limit", "full tmpfs"])
def test_a_full_disk_drops_new_frames_loudly_and_keeps_the_ones_it_had(disk, topics, tmp_path):
    wav = tmp_path / "crowd.wav"
    _tone(wav, 30.0)  # 300 frames, ~2.9 MB: three times what the disk takes
    spool = _tmpfs(tmp_path / "tmpfs") / "spool" if disk == "full tmpfs" else tmp_path / "spool"
    match_id = f"m-disk-{uuid.uuid4().hex[:6]}"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    try:
        offline = subprocess.run(
            [sys.executable, "-m", "infra.cli", "encoder", "--match", match_id, "--source", str(wav), "--start", "0:00",
             "--fast", "--frame-ms", "100", "--spool-dir", str(spool), "--drain-timeout", "2", "--quiet"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
            env=cli_env(topics, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"),  # the broker is unreachable
            preexec_fn=limit_files if disk == "file-size limit" else None,
        )
        kept = int(offline.stdout.split("left in spool ")[1].split()[0]) if "left in spool " in offline.stdout else -1
        full_lines = [line for line in offline.stderr.splitlines() if "SPOOL FULL" in line]
        record_figures("disk full", disk=disk, exit=offline.returncode, frames_kept=kept,
                       log_line=full_lines[0] if full_lines else None)
        assert "Traceback" not in offline.stderr, offline.stderr[-3000:]
        assert offline.returncode == 1  # frames were dropped: the run says so in its status too
        assert full_lines and "disk refused" in full_lines[0] and "NEW FRAMES ARE BEING DROPPED" in full_lines[0]
        assert 60 < kept < 300

        # The broker back (and, for the file-size limit, no limit): what the spool kept goes
        # first, whole and in order. (On the still-full tmpfs the new run's first frames find no
        # room until the kept ones are acknowledged and their space freed.)
        short = tmp_path / "short.wav"
        _tone(short, 1.0)
        online = subprocess.run(
            [sys.executable, "-m", "infra.cli", "encoder", "--match", match_id, "--source", str(short), "--start",
             "1:00", "--fast", "--frame-ms", "100", "--spool-dir", str(spool), "--quiet"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=cli_env(topics))
        assert "Traceback" not in online.stderr, online.stderr[-3000:]
        frames = [decode(m.value(), expect="AudioFrame") for m in read_all(topics, "crowd.audio.v1")]
        frames = [f for f in frames if f["match_id"] == match_id]
        first = [f for f in frames if f["clock"]["ms"] < 60_000]
        assert [f["seq"] for f in first] == list(range(kept))
        if disk == "file-size limit":
            assert online.returncode == 0 and len(frames) == kept + 10, online.stderr
    finally:
        if disk == "full tmpfs":
            subprocess.run(["umount", str(tmp_path / "tmpfs")], check=False)
