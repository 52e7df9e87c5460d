#!/usr/bin/env python3
"""Copy the alert rules and the Grafana dashboard into the Helm chart's files/.

Helm can only read files inside the chart, so the chart carries copies of
``infra/prometheus/alerts.yml`` (its PrometheusRule) and
``infra/grafana/dashboards/crowdsound.json`` (its dashboard ConfigMap). The files in infra/
are the originals: edit those, run this script, commit both. ``tests/test_deploy.py`` fails
while a copy is stale. (The topic catalogue has its own generator: render_topics.py.)

Usage::

    python infra/tools/sync_chart_files.py           # refresh the copies
    python infra/tools/sync_chart_files.py --check   # exit 1 when a copy is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART_FILES = REPO / "helm" / "crowdsound" / "files"

COPIES: dict[Path, Path] = {
    REPO / "infra" / "prometheus" / "alerts.yml": CHART_FILES / "alerts.yml",
    REPO / "infra" / "grafana" / "dashboards" / "crowdsound.json": CHART_FILES / "crowdsound-dashboard.json",
}


def stale() -> list[Path]:
    """The chart copies that differ from their originals."""
    return [copy for original, copy in COPIES.items()
            if not copy.is_file() or copy.read_bytes() != original.read_bytes()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the copies are up to date")
    args = parser.parse_args(argv)
    outdated = stale()
    if args.check:
        for copy in outdated:
            print(f"{copy.relative_to(REPO)} is out of date: run python infra/tools/sync_chart_files.py",
                  file=sys.stderr)
        return 1 if outdated else 0
    for original, copy in COPIES.items():
        if copy in outdated:
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(original.read_bytes())
            print(f"copied {original.relative_to(REPO)} -> {copy.relative_to(REPO)}")
    if not outdated:
        print("chart copies are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
