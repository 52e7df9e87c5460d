"""The synthetic stadium: a scripted match rendered as crowd audio plus its match events.

Pure Python and numpy (no Kafka): the venue encoder and the match feed publish what this
package makes. See ``scripts/*.toml`` for example matches and ``script.py`` for the
script format.

- :func:`load_script` reads and validates a TOML match script into a :class:`MatchScript`;
- :func:`script_events` lists the MatchEvent-shaped events the match feed would report;
- :func:`render_stadium` streams the crowd's audio in blocks, deterministic per seed;
- :func:`write_wav` renders a whole match into a 16-bit WAV file.
"""

from producers.stadium.events import script_events
from producers.stadium.render import render_stadium, write_wav
from producers.stadium.script import MatchScript, Moment, load_script

__all__ = ["MatchScript", "Moment", "load_script", "render_stadium", "script_events", "write_wav"]
