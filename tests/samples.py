"""Sample records of every type, shaped as a real producer would write them."""

from __future__ import annotations

from typing import Any

from schemas.codec import RecordType

CLOCK = {"period": "FIRST_HALF", "ms": 1_390_000}  # 23:10
WALL = 1_795_000_000_000


def sample_record(record_type: RecordType, match_id: str = "m-test") -> dict[str, Any]:
    """A complete, valid record of ``record_type`` with every field set."""
    records: dict[str, dict[str, Any]] = {
        "AudioFrame": {
            "match_id": match_id, "encoder_id": "north-stand", "session_id": "s1", "seq": 7,
            "clock": CLOCK, "wall_time_ms": WALL, "sample_rate": 48_000, "channels": 1,
            "samples_per_channel": 4800, "encoding": "PCM_S16LE", "payload": bytes(9600),
        },
        "MatchEvent": {
            "match_id": match_id, "event_id": "e-17", "type": "GOAL", "side": "HOME", "team": "Arsenal",
            "player": "Saka", "outcome": "penalty", "clock": CLOCK, "wall_time_ms": WALL, "source": "manual",
        },
        "CrowdFeatures": {
            "match_id": match_id, "clock": CLOCK, "length_ms": 3000, "wall_time_ms": WALL,
            "values": {"loudness_rel_db": 12.5, "spectral_centroid_hz": 1800.0},
            "band_energies_db": [-30.0, -25.5, -40.25],
        },
        "EmotionWindow": {
            "match_id": match_id, "clock": CLOCK, "length_ms": 3000, "revision": 1, "arousal": 0.875,
            "valence": 0.75, "state": "CELEBRATION",
            "probabilities": {"CELEBRATION": 0.75, "EXCITEMENT": 0.25}, "tempo_bpm": 120.0,
            "loudness_rel_db": 14.0,
            "events": [{"event_id": "e-17", "type": "GOAL", "side": "HOME", "clock": CLOCK}],
            "wall_time_ms": WALL + 900, "audio_wall_time_ms": WALL + 400, "model_version": "test",
        },
        "MusicControl": {
            "match_id": match_id, "clock": CLOCK, "wall_time_ms": WALL, "bar": 412, "kind": "BAR",
            "style": "orchestral", "tempo_bpm": 128.0, "beats_per_bar": 4, "key": "D", "mode": "MAJOR",
            "chord": "V7", "intensity": 0.875, "layers": ["pad", "bass", "drums"], "stinger": None,
            "reason": "goal for the home side", "ticks_per_beat": 480,
            "midi_events": [{"tick": 0, "data": bytes([0x90, 62, 100])}, {"tick": 480, "data": bytes([0x80, 62, 0])}],
            "beat": 0, "gain": 0.5, "cues": [{"cue_id": "c-1", "type": "HOLD", "set_by": "alice"}],
        },
        "Cue": {
            "match_id": match_id, "cue_id": "c-1", "type": "FADE_OUT", "bars": 4, "clock": CLOCK, "wall_time_ms": WALL,
            "set_by": "alice", "source": "controlroom",
        },
        "AudioChunk": {
            "match_id": match_id, "clock": CLOCK, "wall_time_ms": WALL, "seq": 3, "first_sample": 288_000,
            "sample_rate": 48_000, "channels": 2, "samples_per_channel": 96_000, "encoding": "PCM_S16LE",
            "payload": bytes(range(256)) * 4,
        },
        "Preferences": {
            "match_id": match_id, "clock": None, "wall_time_ms": WALL, "style": "electronic",
            "intensity_min": 0.25, "intensity_max": 0.75, "tempo_min_bpm": 80.0, "tempo_max_bpm": 140.0,
            "muted_layers": ["drums"], "set_by": "tests",
        },
        "DeadLetter": {
            "match_id": match_id, "clock": CLOCK, "wall_time_ms": WALL, "reason": "bad bytes",
            "error_type": "SchemaError", "source": "crowd.audio.v1[3]@17", "source_topic": "crowd.audio.v1",
            "source_partition": 3, "source_offset": 17, "original_key": match_id.encode(),
            "original_value": b"\x00garbage", "processor": "tests",
        },
    }
    return records[record_type]


def with_offsets(items: list[tuple[str, bytes, bytes]]) -> list[tuple[str, int, bytes, bytes]]:
    """(topic, key, value) in arrival order → (topic, offset, key, value), offsets counted per topic."""
    offsets: dict[str, int] = {}
    records = []
    for topic, key, value in items:
        records.append((topic, offsets.setdefault(topic, 0), key, value))
        offsets[topic] += 1
    return records
