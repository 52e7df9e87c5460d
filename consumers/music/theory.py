"""Music theory the director and the arranger agree on: keys, scales, roman-numeral chords.

Everything is pitch classes (0 = C .. 11 = B) so that the arranger can place notes in any
register and the key rule ("every note is in the scale, or is a planned chord tone outside
it") can be checked with set arithmetic. Roman numerals follow the common-practice reading:
upper case is a major triad, lower case minor, ``°`` diminished, ``ø`` half-diminished,
``+`` augmented. Without an accidental the root is the degree of the key's own scale
(so ``VI`` in C minor is Ab), except that lower-case ``vii`` in minor sits on the raised
leading tone (B in C minor), as in harmonic minor. With an accidental the root is counted
from the *major* scale of the tonic, the pop/film reading of borrowed chords (``bVI`` in
C is Ab whatever the mode). ``X/Y`` is X in the key of Y (secondary dominants).
"""

from __future__ import annotations

import re

from consumers.music.types import Mode

__all__ = [
    "BORROWED", "DIATONIC", "FUNCTION", "SECONDARY",
    "chord_bass", "chord_scale", "chord_tones", "chromatic_tones", "fifth_down", "fifth_up",
    "key_name", "parallel", "pitch_class", "relative", "scale",
]

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "x": 2}

# Conventional key signatures: F# major (6 sharps) rather than Gb, Db major (5 flats) rather
# than C#; minor keys spelled after their relative major (Eb minor shares Gb's six flats,
# G# minor B major's five sharps).
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

_STEPS: dict[str, tuple[int, ...]] = {
    "MAJOR": (0, 2, 4, 5, 7, 9, 11),
    "MINOR": (0, 2, 3, 5, 7, 8, 10),  # natural minor; harmonic colour comes from chords
}

_ROMANS = ("I", "II", "III", "IV", "V", "VI", "VII")

_NUMERAL = re.compile(
    r"^(?P<acc>[b#♭♯]?)(?P<roman>[IViv]+)(?P<qual>°|o|ø|\+)?(?P<seventh>maj7|M7|7)?"
    r"(?P<sus>sus4|sus2)?(?P<add>add9)?(?P<inv>6/4|64|6)?$"
)

# The numerals a director may choose from, per mode. Minor includes the harmonic-minor
# dominant (V, V7, vii°): their raised leading tone is the classic planned chromatic note.
DIATONIC: dict[Mode, tuple[str, ...]] = {
    "MAJOR": ("I", "ii", "iii", "IV", "V", "vi", "vii°", "V7", "ii7", "IVmaj7", "Vsus4", "I6/4"),
    "MINOR": ("i", "ii°", "III", "iv", "v", "V", "VI", "VII", "vii°", "V7", "iv7", "Vsus4", "i6/4"),
}

# Colour chords from the parallel mode: the film-score darkening of a major key (iv, bVI,
# bVII) and, in minor, the dorian IV, the Neapolitan and the Picardy third.
BORROWED: dict[Mode, tuple[str, ...]] = {
    "MAJOR": ("iv", "bIII", "bVI", "bVII"),
    "MINOR": ("IV", "bII", "I"),
}

# Secondary dominants: the strongest pull towards a chord other than the tonic.
SECONDARY: dict[Mode, tuple[str, ...]] = {
    "MAJOR": ("V/V", "V7/V", "vii°/V", "V/vi", "V7/IV", "V/ii", "V7/ii"),
    "MINOR": ("V/V", "V7/V", "vii°/V", "V/iv", "V7/iv"),
}

_BASE_FUNCTION: dict[str, str] = {
    # major
    "I": "T", "ii": "PD", "iii": "T", "IV": "PD", "V": "D", "vi": "T", "vii°": "D",
    "V7": "D", "ii7": "PD", "IVmaj7": "PD", "Vsus4": "D", "I6/4": "D",  # cadential six-four
    # minor
    "i": "T", "ii°": "PD", "III": "T", "iv": "PD", "v": "D", "VI": "PD", "VII": "D",
    "iv7": "PD", "i6/4": "D",
    # borrowed
    "bIII": "T", "bVI": "PD", "bVII": "D", "bII": "PD",
}
# A secondary dominant does the job of the chord just before its target in T -> PD -> D -> T:
# V/V leads into the dominant, so it is predominant; V7/IV leaves the tonic area, so it is T.
_BEFORE = {"T": "D", "PD": "T", "D": "PD"}
FUNCTION: dict[str, str] = {
    **_BASE_FUNCTION,
    **{n: _BEFORE[_BASE_FUNCTION[n.split("/")[1]]] for mode in SECONDARY for n in SECONDARY[mode]},
}


def pitch_class(name: str) -> int:
    """The pitch class of a note or key name: "C" -> 0, "F#" -> 6, "Bb" -> 10, "Cb" -> 11."""
    text = name.strip()
    if not text or text[0].upper() not in _LETTERS:
        raise ValueError(f"not a note name: {name!r}")
    value = _LETTERS[text[0].upper()]
    for mark in text[1:]:
        if mark not in _ACCIDENTALS:
            raise ValueError(f"not a note name: {name!r}")
        value += _ACCIDENTALS[mark]
    return value % 12


def key_name(pc: int, mode: Mode) -> str:
    """The conventional spelling of the key on pitch class ``pc`` (Bb major, C# minor, ...)."""
    names = _MAJOR_NAMES if mode == "MAJOR" else _MINOR_NAMES
    return names[pc % 12]


def _steps(mode: Mode) -> tuple[int, ...]:
    if mode not in _STEPS:
        raise ValueError(f"unknown mode {mode!r}")
    return _STEPS[mode]


def scale(key: str, mode: Mode) -> tuple[int, ...]:
    """The seven pitch classes of the key, tonic first (minor is natural minor)."""
    tonic = pitch_class(key)
    return tuple((tonic + step) % 12 for step in _steps(mode))


def _intervals(upper: bool, qual: str, seventh: str, sus: str, add: str) -> tuple[int, ...]:
    """Intervals above the root, in stacking order (root, third, fifth, seventh, ninth)."""
    if qual in ("°", "o"):
        triad = [0, 3, 6]
    elif qual == "ø":
        triad = [0, 3, 6]
        seventh = seventh or "7"  # ø means the half-diminished seventh chord
    elif qual == "+":
        triad = [0, 4, 8]
    else:
        triad = [0, 4, 7] if upper else [0, 3, 7]
    if sus:
        triad[1] = 5 if sus == "sus4" else 2
    if seventh in ("maj7", "M7"):
        triad.append(11)
    elif seventh:
        triad.append(9 if qual in ("°", "o") else 10)  # dim7, else the minor seventh
    if add:
        triad.append(14)
    return tuple(triad)


def _parse(key: str, mode: Mode, numeral: str) -> tuple[int, int, tuple[int, ...], str]:
    """(root pc, root letter, intervals, inversion figure) of a numeral that is not secondary.

    Letters count C=0 .. B=6 from the key's own spelling, so that a chromatic tone knows
    which scale note it alters (Ab alters A, F# alters F).
    """
    match = _NUMERAL.match(numeral)
    if match is None or match["roman"].upper() not in _ROMANS:
        raise ValueError(f"unknown chord numeral {numeral!r}")
    roman = match["roman"]
    upper = roman.isupper()
    if not (upper or roman.islower()):
        raise ValueError(f"unknown chord numeral {numeral!r} (mixed case)")
    degree = _ROMANS.index(roman.upper())
    tonic = pitch_class(key)
    acc = match["acc"]
    if acc:
        root = tonic + _STEPS["MAJOR"][degree] + (1 if acc in "#♯" else -1)
    elif mode == "MINOR" and degree == 6 and not upper:
        root = tonic + 11  # vii° in minor is built on the leading tone
    else:
        root = tonic + _steps(mode)[degree]
    intervals = _intervals(upper, match["qual"] or "", match["seventh"] or "", match["sus"] or "",
                           match["add"] or "")
    letter = (_letter(key) + degree) % 7
    return root % 12, letter, intervals, match["inv"] or ""


def _letter(key: str) -> int:
    """The letter of a key name, C=0 .. B=6 (after pitch_class has validated the name)."""
    pitch_class(key)
    return "CDEFGAB".index(key.strip()[0].upper())


def _spell(pc: int, letter: int) -> str:
    """The name of ``pc`` written on ``letter`` (pc 1 on C is "C#", on D is "Db")."""
    name = "CDEFGAB"[letter]
    offset = (pc - _LETTERS[name] + 6) % 12 - 6
    return name + ("#" * offset if offset > 0 else "b" * -offset)


def _split_secondary(numeral: str) -> tuple[str, str] | None:
    """("V7", "V") for "V7/V"; None for a plain numeral (including the "6/4" figure)."""
    head, sep, tail = numeral.rpartition("/")
    if not sep or tail[:1].isdigit():
        return None
    return head, tail


def _tonicized(key: str, mode: Mode, target: str) -> tuple[str, Mode]:
    """The key a secondary chord borrows from: the target's root, major or minor.

    Spelled on the target's letter (V/V in F# major borrows from C# major, not Db), so that
    the borrowed tones keep the letters of the home key.
    """
    root, letter, intervals, _ = _parse(key, mode, target)
    if intervals[:3] == (0, 4, 7):
        target_mode: Mode = "MAJOR"
    elif intervals[:3] == (0, 3, 7):
        target_mode = "MINOR"
    else:
        raise ValueError(f"cannot tonicize {target!r}: not a major or minor triad")
    return _spell(root, letter), target_mode


# How many letters above the root each interval is written (a sus4 is a fourth, a dim7 a seventh).
_INTERVAL_LETTERS = {0: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 4, 7: 4, 8: 4, 9: 6, 10: 6, 11: 6, 14: 1}


def _spelled_chord(key: str, mode: Mode, numeral: str) -> tuple[tuple[int, int], ...]:
    """The chord's (pc, letter) pairs, root first, without repeats."""
    secondary = _split_secondary(numeral)
    if secondary is not None:
        head, target = secondary
        return _spelled_chord(*_tonicized(key, mode, target), head)
    root, letter, intervals, _ = _parse(key, mode, numeral)
    tones = (((root + i) % 12, (letter + _INTERVAL_LETTERS[i]) % 7) for i in intervals)
    return tuple(dict.fromkeys(tones))


def chord_tones(key: str, mode: Mode, numeral: str) -> tuple[int, ...]:
    """The chord's pitch classes, root first then third, fifth, seventh (ValueError if unknown)."""
    return tuple(dict.fromkeys(pc for pc, _ in _spelled_chord(key, mode, numeral)))


def chord_bass(key: str, mode: Mode, numeral: str) -> int:
    """The pitch class the bass plays: the root, or the third/fifth of an inversion (I6, I6/4)."""
    secondary = _split_secondary(numeral)
    if secondary is not None:
        head, target = secondary
        return chord_bass(*_tonicized(key, mode, target), head)
    _, _, _, inversion = _parse(key, mode, numeral)
    tones = chord_tones(key, mode, numeral)
    if inversion == "6":
        return tones[1]
    if inversion in ("6/4", "64"):
        return tones[2]
    return tones[0]


def chromatic_tones(key: str, mode: Mode, numeral: str) -> frozenset[int]:
    """The chord's tones outside the key's scale: the notes the arranger plans as chromatic."""
    return frozenset(chord_tones(key, mode, numeral)) - frozenset(scale(key, mode))


def chord_scale(key: str, mode: Mode, numeral: str) -> tuple[int, ...]:
    """The seven pitch classes a line may use over this chord, tonic first.

    The key's scale with each altered letter taken from the chord: over the raised-B
    dominant of C minor the line uses B, never Bb (a false relation); over bVII in C it uses
    Bb. The result stays inside scale + chord tones, so it obeys the key rule.
    """
    by_letter = dict(zip(((_letter(key) + d) % 7 for d in range(7)), scale(key, mode)))
    for pc, letter in _spelled_chord(key, mode, numeral):
        by_letter[letter] = pc
    tonic = pitch_class(key)
    return tuple(sorted(by_letter.values(), key=lambda pc: (pc - tonic) % 12))


def fifth_up(key: str, mode: Mode) -> str:
    """The key a fifth higher (one sharp more): C -> G."""
    return key_name(pitch_class(key) + 7, mode)


def fifth_down(key: str, mode: Mode) -> str:
    """The key a fifth lower (one flat more): C -> F."""
    return key_name(pitch_class(key) + 5, mode)


def relative(key: str, mode: Mode) -> tuple[str, Mode]:
    """The key with the same signature in the other mode: C major <-> A minor."""
    if mode == "MAJOR":
        return key_name(pitch_class(key) + 9, "MINOR"), "MINOR"
    _steps(mode)
    return key_name(pitch_class(key) + 3, "MAJOR"), "MAJOR"


def parallel(key: str, mode: Mode) -> tuple[str, Mode]:
    """The same tonic in the other mode: C major <-> C minor (respelled: Db major -> C# minor)."""
    other: Mode = "MINOR" if mode == "MAJOR" else "MAJOR"
    _steps(mode)
    return key_name(pitch_class(key), other), other
