"""The files a replay leaves for editors, as pure functions: one import for the orchestration.

The replay (reading Kafka, finding highlights, composing) decides *what* goes into the
folder; these functions decide *how* it is written, so that every artifact is broadcast
ready and byte-identical for the same inputs: mastered WAVs (-23 LUFS, -1 dBTP), the crowd
mixed under the music, the bar-aligned reel, the timeline PNG and the JSON/Markdown index.
Each lives in its own small module; this one only gathers them.
"""

from __future__ import annotations

from consumers.replay.audio_io import write_wav
from consumers.replay.crowd_mix import mix_under_crowd
from consumers.replay.index import write_index_markdown, write_json
from consumers.replay.loudness import broadcast_master, integrated_lufs, true_peak_dbtp
from consumers.replay.reel import ReelClip, ReelResult, join_reel
from consumers.replay.timeline_plot import timeline_png

__all__ = [
    "ReelClip", "ReelResult", "broadcast_master", "integrated_lufs", "join_reel", "mix_under_crowd",
    "timeline_png", "true_peak_dbtp", "write_index_markdown", "write_json", "write_wav",
]
