"""Highlight jobs: ``crowdsound replay`` run for the page, one at a time, with progress and files.

Each job is the replay CLI in a child process (rendering is CPU-heavy and must not stall the
server's event loop), writing into ``<state dir>/controlroom/highlights/<job id>/``. Its
progress lines ("reading crowd.emotions.v1: 40% ...") become the job's progress; its JSON
summary becomes the job's result. Jobs live in memory: after a restart their files are still
on disk, but the list starts empty.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from consumers.controlroom.metrics import HIGHLIGHT_JOBS

__all__ = ["HighlightJob", "HighlightJobs"]

log = logging.getLogger("crowdsound.controlroom")

JobState = Literal["queued", "running", "done", "failed"]
_PROGRESS = re.compile(r"^(?P<label>[^:\r\n]+):\s+(?P<pct>\d+)%")


@dataclass
class HighlightJob:
    job_id: str
    match_id: str
    options: dict[str, Any]
    requested_by: str
    created_ms: int
    state: JobState = "queued"
    step: str = ""
    progress: float = 0.0  # 0..1 of the current step
    error: str | None = None
    result: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class HighlightJobs:
    """Queue of replay jobs run by one worker thread."""

    def __init__(self, base_dir: Path, *, env: dict[str, str] | None = None, timeout_s: float = 1800.0) -> None:
        self.base_dir = base_dir
        self.env = env if env is not None else dict(os.environ)
        self.timeout_s = timeout_s
        self.jobs: dict[str, HighlightJob] = {}
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.stopping = False
        self.current: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._run, name="controlroom-highlights", daemon=True)
        self.thread.start()

    def submit(self, match_id: str, options: dict[str, Any], requested_by: str) -> HighlightJob:
        job = HighlightJob(job_id=uuid.uuid4().hex[:12], match_id=match_id, options=options,
                           requested_by=requested_by, created_ms=int(time.time() * 1000))
        with self.wakeup:
            self.jobs[job.job_id] = job
            self.wakeup.notify()
        return job

    def get(self, job_id: str) -> HighlightJob | None:
        with self.lock:
            return self.jobs.get(job_id)

    def of_match(self, match_id: str) -> list[HighlightJob]:
        with self.lock:
            return sorted((j for j in self.jobs.values() if j.match_id == match_id), key=lambda j: -j.created_ms)

    def file_path(self, job: HighlightJob, name: str) -> Path | None:
        """A file of a finished job, or None (names come from the job's own list: no path tricks)."""
        return self.base_dir / job.job_id / name if name in job.files else None

    def stop(self) -> None:
        with self.wakeup:
            self.stopping = True
            self.wakeup.notify()
            if self.current is not None and self.current.poll() is None:
                self.current.terminate()

    # -- the worker thread -----------------------------------------------------------------------
    def _next(self) -> HighlightJob | None:
        with self.wakeup:
            while not self.stopping:
                queued = [j for j in self.jobs.values() if j.state == "queued"]
                if queued:
                    job = min(queued, key=lambda j: j.created_ms)
                    job.state = "running"
                    return job
                self.wakeup.wait()
        return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._replay(job)
            except Exception as error:  # noqa: BLE001 - a job's failure is the job's, never the server's
                job.state, job.error = "failed", f"{type(error).__name__}: {error}"
            HIGHLIGHT_JOBS.labels(outcome=job.state).inc()
            log.info("highlight job %s for match_id=%s %s", job.job_id, job.match_id, job.state)

    def _command(self, job: HighlightJob, out_dir: Path) -> list[str]:
        options = job.options
        args = [sys.executable, "-m", "infra.cli", "replay", "--match", job.match_id, "--out", str(out_dir), "--json"]
        if options.get("ranges"):
            for text in options["ranges"]:
                args += ["--range", text]
        else:
            args += ["--auto", str(options.get("auto") or 5)]
        if options.get("style"):
            args += ["--style", options["style"]]
        if options.get("from_audio"):
            args.append("--from-audio")
        if options.get("mix_crowd"):
            args.append("--mix-crowd")
        return args

    def _replay(self, job: HighlightJob) -> None:
        out_dir = self.base_dir / job.job_id
        out_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self._command(job, out_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env={**self.env, "CROWDSOUND_LOG_LEVEL": "WARNING"})
        self.current = process
        errors: list[str] = []
        stderr = process.stderr
        assert stderr is not None
        for line in stderr:
            match = _PROGRESS.match(line.strip())
            if match:
                job.step, job.progress = match["label"], int(match["pct"]) / 100
            elif line.strip():
                errors.append(line.strip())
        stdout, _ = process.communicate(timeout=self.timeout_s)
        self.current = None
        if process.returncode != 0:
            job.state = "failed"
            job.error = (errors[-1] if errors else f"replay exited with status {process.returncode}")[:500]
            return
        job.result = json.loads(stdout)
        job.files = sorted(p.name for p in out_dir.iterdir() if p.is_file())
        job.state, job.step, job.progress = "done", "done", 1.0
