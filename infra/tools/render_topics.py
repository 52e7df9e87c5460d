#!/usr/bin/env python3
"""Render the topic catalogue (infra/catalogue.py) and the roles' ACLs (infra/acls.py) into the
Helm chart's files/topics.yaml and files/acls.yaml.

The chart's Strimzi KafkaTopic resources (``topics.mode: strimzi``) and KafkaUser resources
(``kafka.strimziUsers.enabled``) are rendered from those files, so the catalogue stays the one
source of truth: change it, run this script, commit all. ``tests/test_deploy.py`` fails while
a file is out of date.

Usage::

    python infra/tools/render_topics.py           # rewrite helm/crowdsound/files/{topics,acls}.yaml
    python infra/tools/render_topics.py --check   # exit 1 (and say so) when one is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "helm" / "crowdsound" / "files" / "topics.yaml"
ACLS_TARGET = REPO / "helm" / "crowdsound" / "files" / "acls.yaml"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

__all__ = ["ACLS_TARGET", "TARGET", "render", "render_acls"]

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


_ACLS_HEADER = """\
# GENERATED from infra/acls.py by infra/tools/render_topics.py -- do not edit by hand.
# One entry per role: the grants of its Strimzi KafkaUser (operations in Strimzi's names).
# Resource names are bare: the chart adds config.topicPrefix; patternType prefix matches
# every name that starts with it.
"""
_STRIMZI_KINDS = {"topic": "topic", "group": "group", "transactional_id": "transactionalId"}
_STRIMZI_PATTERNS = {"literal": "literal", "prefixed": "prefix"}
_STRIMZI_OPERATIONS = {"READ": "Read", "WRITE": "Write", "CREATE": "Create", "DESCRIBE": "Describe",
                       "DESCRIBE_CONFIGS": "DescribeConfigs"}


def render_acls() -> str:
    """The YAML text of files/acls.yaml for the current roles."""
    from infra.acls import ROLES

    lines = [_ACLS_HEADER.rstrip("\n"), "roles:"]
    for role in ROLES:
        lines.append(f"  - name: {_scalar(role.name)}")
        lines.append(f"    usedBy: {_scalar(role.used_by)}")
        lines.append("    acls:")
        for grant in role.grants:
            operations = ", ".join(_STRIMZI_OPERATIONS[op] for op in grant.operations)
            lines.append(f"      - type: {_STRIMZI_KINDS[grant.kind]}")
            lines.append(f"        name: {_scalar(grant.name)}")
            lines.append(f"        patternType: {_STRIMZI_PATTERNS[grant.pattern]}")
            lines.append(f"        operations: [{operations}]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = 0
    for target, text in ((TARGET, render()), (ACLS_TARGET, render_acls())):
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        name = target.relative_to(REPO)
        if args.check:
            if current != text:
                print(f"{name} is out of date: run python infra/tools/render_topics.py", file=sys.stderr)
                stale += 1
            else:
                print(f"{name} is up to date")
        elif current != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
        else:
            print(f"{name} unchanged")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
