#!/usr/bin/env python3
"""Render the topic catalogue (infra/catalogue.py) into the Helm chart's files/topics.yaml.

The chart's Strimzi KafkaTopic resources (``topics.mode: strimzi``) are rendered from that
file, so the catalogue stays the one source of truth: change the catalogue, run this script,
commit both. ``tests/test_deploy.py`` fails while the file is out of date.

Usage::

    python infra/tools/render_topics.py           # rewrite helm/crowdsound/files/topics.yaml
    python infra/tools/render_topics.py --check   # exit 1 (and say so) when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "helm" / "crowdsound" / "files" / "topics.yaml"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

__all__ = ["render", "TARGET"]

_HEADER = """\
# GENERATED from infra/catalogue.py by infra/tools/render_topics.py -- do not edit by hand.
# Topic names are bare: the chart adds config.topicPrefix. partitions: null means the
# deployment's count (config.partitions), which every match-keyed topic must share.
"""


def _scalar(value: object) -> str:
    # JSON strings are valid YAML scalars and quote everything that needs quoting.
    return json.dumps(value, ensure_ascii=False)


def render() -> str:
    """The YAML text of files/topics.yaml for the current catalogue."""
    from infra.catalogue import CATALOGUE, topic_configs

    lines = [_HEADER.rstrip("\n"), "topics:"]
    for spec in CATALOGUE:
        lines.append(f"  - name: {_scalar(spec.name)}")
        lines.append(f"    valueType: {_scalar(spec.value_type)}")
        lines.append(f"    description: {_scalar(spec.description)}")
        lines.append(f"    partitions: {'null' if spec.partitions is None else spec.partitions}")
        lines.append("    config:")
        for key, value in topic_configs(spec).items():
            lines.append(f"      {key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args(argv)
    text = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(REPO)} is out of date: run python infra/tools/render_topics.py",
                  file=sys.stderr)
            return 1
        print(f"{TARGET.relative_to(REPO)} is up to date")
        return 0
    if current != text:
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(REPO)}")
    else:
        print(f"{TARGET.relative_to(REPO)} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
