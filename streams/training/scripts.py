"""Random match scripts for the training set: many matches, each a different crowd.

Every script is written as TOML and read back with the stadium's own parser, so a training
match is exactly what a user could have written (``script_text`` shows it). The draw is a
pure function of the seed.

What varies from match to match: the seed of the stadium (voices, room), the home share
of the crowd (0.6-0.92), the length of the halves and breaks, and a sequence of moments:
goals for either side (some from the penalty spot, some own goals), chances off the post,
saved or blocked, misses and saves, yellow and red cards often followed by whistles or
boos, VAR reviews, penalties awarded, substitutions, chants of every tune at tempos from
70 to 170 bpm by either end, applause, boos and whistles, and quiet spells where nothing
happens — at intensities from 0.5 to 1.5.
"""

from __future__ import annotations

import numpy as np

from producers.stadium.script import MatchScript, parse_script

__all__ = ["random_script", "script_text"]

# Relative frequency of each kind of moment in a training match.
_KINDS = {
    "goal": 0.15, "own_goal": 0.02, "chance": 0.10, "miss": 0.07, "save": 0.07, "card": 0.10, "var": 0.04,
    "penalty": 0.03, "substitution": 0.03, "chant": 0.17, "applause": 0.05, "boos": 0.06, "whistles": 0.05,
    "quiet": 0.06,
}
_BREAK_KINDS = {"chant": 0.5, "applause": 0.2, "boos": 0.15, "whistles": 0.1, "quiet": 0.05}
_TEAMS = ("Arsenal", "Chelsea", "Liverpool", "Everton", "Napoli", "Roma", "Sevilla", "Betis", "Ajax", "Feyenoord",
          "Celtic", "Rangers", "Porto", "Benfica", "Lazio", "Hertha", "Union", "Lens", "Lille", "Boca")
_PLAYERS = ("Saka", "Palmer", "Salah", "Kane", "Son", "Rice", "Mount", "Silva", "Diaz", "Mata", "Pedri", "Gomez")


def _mmss(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def script_text(seed: int, *, minutes: float = 4.0) -> str:
    """The TOML of training match ``seed``, about ``minutes`` of audio long."""
    rng = np.random.default_rng([seed, 424_242])
    home, away = (str(t) for t in rng.choice(_TEAMS, 2, replace=False))
    total_s = max(40, int(minutes * 60))
    pre = int(rng.integers(8, 16))
    post = int(rng.integers(8, 16))
    half_time = int(rng.integers(15, 35)) if total_s >= 120 else 0
    half = max(15, (total_s - pre - post - half_time) // 2)
    lines = [
        "[match]",
        f'id = "train-{seed}"',
        f'home = "{home}"',
        f'away = "{away}"',
        f"seed = {seed}",
        f"home_share = {float(rng.uniform(0.6, 0.92)):.3f}",
        'feed_delay = "0:03"',
        "",
        "[periods]",
        f'pre_match = "{_mmss(pre * 1000)}"',
        f'first_half = "{_mmss(half * 1000)}"',
    ]
    if half_time:
        lines.append(f'half_time = "{_mmss(half_time * 1000)}"')
    lines += [f'second_half = "{_mmss(half * 1000)}"', f'post_match = "{_mmss(post * 1000)}"', ""]
    moments: list[dict[str, object]] = []
    # Before kick-off, at half time and after the final whistle: crowd-only moments.
    for prefix, length in (("PRE", pre), ("HT", half_time), ("POST", post)):
        if length >= 12 and rng.random() < 0.6:
            moments.append(_crowd_moment(rng, f"{prefix} {_mmss(int(rng.integers(1, length - 10)) * 1000)}",
                                         _pick(rng, _BREAK_KINDS), max_s=length - 2))
    for offset_min in (0, 45):
        t = int(rng.integers(4, 10)) * 1000
        end = half * 1000 - 6000
        while t < end:
            kind = _pick(rng, _KINDS)
            at = f"{offset_min + t // 60_000}:{t // 1000 % 60:02d}"
            room_s = (end - t) // 1000
            gap = int(rng.uniform(6, 16) * 1000)
            if kind == "quiet":
                gap += int(rng.uniform(10, 30) * 1000)
            elif kind in {"chant", "applause", "boos", "whistles"}:
                moment = _crowd_moment(rng, at, kind, max_s=max(room_s, 5))
                moments.append(moment)
                gap += int(moment["_length_s"]) * 1000 if rng.random() < 0.85 else 0
            elif kind == "var":
                length = int(rng.integers(15, 45))
                if length + 2 > room_s + 4:
                    t += 2000
                    continue
                moments.append({"at": at, "kind": "var", "side": _side(rng), "decision":
                                str(rng.choice(["goal", "penalty", "red_card", "other"])),
                                "outcome": str(rng.choice(["confirmed", "overturned"])), "duration": _mmss(length * 1000),
                                "intensity": _intensity(rng)})
                gap += length * 1000 + 8000
            else:
                moment = {"at": at, "kind": kind, "side": _side(rng, home_bias=0.55), "intensity": _intensity(rng),
                          "player": str(rng.choice(_PLAYERS))}
                if kind == "goal":
                    moment["build"] = _mmss(int(rng.integers(2, 10)) * 1000)
                    if rng.random() < 0.12:
                        moment["penalty"] = True
                    gap += int(rng.uniform(10, 25) * 1000)
                elif kind == "chance":
                    moment["outcome"] = str(rng.choice(["off_target", "post", "blocked", "saved"]))
                elif kind == "card":
                    moment["outcome"] = str(rng.choice(["yellow", "second_yellow", "red"], p=[0.7, 0.1, 0.2]))
                moments.append(moment)
                if kind == "card" and rng.random() < 0.5 and t + 14_000 < end:
                    follow = t + int(rng.integers(5, 10)) * 1000
                    moments.append(_crowd_moment(rng, f"{offset_min + follow // 60_000}:{follow // 1000 % 60:02d}",
                                                 str(rng.choice(["whistles", "boos"])), max_s=10,
                                                 side=str(moment["side"])))
                    gap += 10_000
            if rng.random() < 0.15:  # sometimes things pile up: the next moment comes early
                gap //= 3
            t += max(gap, 3000)
    for moment in moments:
        moment.pop("_length_s", None)
        lines.append("[[moments]]")
        for key, value in moment.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
        lines.append("")
    return "\n".join(lines)


def random_script(seed: int, *, minutes: float = 4.0) -> MatchScript:
    """Training match ``seed`` (about ``minutes`` of audio), validated by the stadium's parser."""
    return parse_script(script_text(seed, minutes=minutes), name=f"train-{seed}.toml")


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return str(rng.choice(names, p=p / p.sum()))


def _side(rng: np.random.Generator, *, home_bias: float = 0.5) -> str:
    return "home" if rng.random() < home_bias else "away"


def _intensity(rng: np.random.Generator) -> float:
    return round(float(rng.uniform(0.5, 1.5)), 2)


def _crowd_moment(rng: np.random.Generator, at: str, kind: str, *, max_s: int, side: str | None = None) -> dict[str, object]:
    """A chant, applause, boos, whistles or a quiet spell (an applause-free placeholder)."""
    if kind == "quiet":
        kind = "applause" if rng.random() < 0.3 else "chant"
    if kind == "chant":
        length = int(min(rng.integers(10, 36), max(max_s, 6)))
        moment: dict[str, object] = {
            "at": at, "kind": "chant", "side": side or str(rng.choice(["home", "away", "both"], p=[0.65, 0.3, 0.05])),
            "tempo": int(rng.integers(70, 171)), "tune": str(rng.choice(["name", "anthem", "clap"])),
            "duration": _mmss(length * 1000), "intensity": _intensity(rng),
        }
    else:
        length = int(min(rng.integers(5, 16), max(max_s, 4)))
        moment = {"at": at, "kind": kind, "side": side or str(rng.choice(["home", "away", "both"], p=[0.6, 0.25, 0.15])),
                  "duration": _mmss(length * 1000), "intensity": _intensity(rng)}
    moment["_length_s"] = length
    return moment
