"""``crowdsound broker ...``, ``crowdsound topics ...`` and ``crowdsound security ...``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from infra.cliargs import whole_number
from infra.errors import CrowdsoundError
from infra.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the broker, topics, security and demo subcommands to the CLI."""
    _register_demo(commands)
    broker = commands.add_parser(
        "broker", help="run a local Apache Kafka broker (KRaft, single node, 127.0.0.1)",
        description="Run a real single-node Apache Kafka 4 broker on 127.0.0.1 for development, "
        "tests and the demo. `up` assembles Kafka from Maven Central on first use (needs Java 17+ "
        "and Maven), formats its storage once and waits until it answers; data is kept between "
        "runs in CROWDSOUND_STATE_DIR (default .crowdsound/).",
    )
    actions = broker.add_subparsers(dest="action", metavar="ACTION", parser_class=type(broker))
    actions.required = True
    for name, help_text in (
        ("up", "start the broker unless it runs; wait until it answers metadata"),
        ("down", "stop the broker (SIGTERM, then wait); data is kept"),
        ("status", "print running/stopped, bootstrap address, Kafka version, data folder"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument("--port", type=whole_number(low=1, high=65_533, what="a port"), default=None,
                            help="client port; the controller uses port+1 (default: CROWDSOUND_BROKER_PORT or 9092; "
                            "with --secure that + 2). Keep it below 32768, outside the ports the OS hands to client "
                            "sockets")
        action.add_argument("--secure", action="store_true", help=_SECURE_HELP if name == "up" else
                            "the secure broker (`up --secure`); `down` without --secure stops both")
        action.set_defaults(handler=_broker)
    _register_security(commands)

    topics = commands.add_parser(
        "topics", help="create, alter and list the topics of the catalogue",
        description="The topic catalogue (infra/catalogue.py) names every topic with its partitions, "
        "retention, cleanup policy, compression and max message size. `apply` makes the cluster match "
        "it (idempotent); `list` shows what the cluster has.",
    )
    actions = topics.add_subparsers(dest="action", metavar="ACTION", parser_class=type(topics))
    actions.required = True
    apply = actions.add_parser("apply", help="create missing topics, alter differing settings, report changes",
                               description="Create missing catalogue topics and alter differing settings. "
                               "Exits 1 if a topic's partition count conflicts with the catalogue.")
    apply.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    apply.set_defaults(handler=_topics_apply)
    listing = actions.add_parser("list", help="the catalogue topics with their settings on the cluster",
                                 description="Show each catalogue topic as the cluster has it.")
    listing.set_defaults(handler=_topics_list)


_SECURE_HELP = """\
the secure broker instead: SASL_SSL with SCRAM-SHA-512 on port+2 (mutual TLS on port+4), a
certificate from a CA made for this machine (in CROWDSOUND_STATE_DIR/security/tls, never
committed), ACLs enforced (nothing allowed without one) and one super user, admin, whose
client properties go to CROWDSOUND_STATE_DIR/security/admin.properties. Then run
`crowdsound security apply` for the role principals"""


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from infra.broker import broker_down, broker_status, broker_up

    if args.action == "up":
        status, started = broker_up(settings, port=args.port, secure=args.secure)
        print("started" if started else "already running")
        print("\n".join(status.lines()))
        if args.secure:
            print("next: crowdsound security apply   (a principal, ACLs and a properties file per role)")
    elif args.action == "down":
        print(broker_down(settings, port=args.port, secure=args.secure))
        if not args.secure and args.port is None:
            line = broker_down(settings, secure=True)
            if not line.startswith("no broker"):
                print(line)
    else:
        print("\n".join(broker_status(settings, port=args.port, secure=args.secure).lines()))
    return 0


_SECURITY_HELP = """\
One Kafka principal per role, with ACLs granting it only its topics, groups and
transactional ids (infra/acls.py, built from the topic catalogue). `apply` creates each
role's SCRAM-SHA-512 user and ACLs on the cluster (idempotent: a second run changes nothing)
and writes DIR/<role>.properties (0600), a librdkafka properties file:

  KAFKA_CONFIG_FILE=.crowdsound/security/encoder.properties crowdsound encoder ...
  kcat -F .crowdsound/security/reader.properties -L

It runs as an admin: KAFKA_CONFIG_FILE (or the KAFKA_* variables) when set, otherwise the
local secure broker's .crowdsound/security/admin.properties (`crowdsound broker up --secure`).
`roles` prints what each role may do.
"""


def _register_security(commands: Any) -> None:
    security = commands.add_parser("security", help="role principals, ACLs and their client properties files",
                                   description=_SECURITY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = security.add_subparsers(dest="action", metavar="ACTION", parser_class=type(security))
    actions.required = True
    apply = actions.add_parser("apply", help="create the role users and ACLs, write <role>.properties files",
                               description="Create or update each role's SCRAM-SHA-512 user and ACLs and write its "
                               "properties file; report what changed. Idempotent.")
    apply.add_argument("--out", type=Path, metavar="DIR",
                       help="where to write <role>.properties (default: CROWDSOUND_STATE_DIR/security)")
    apply.add_argument("--role", action="append", metavar="ROLE", dest="roles",
                       help="only this role (repeatable; default: every role, see `crowdsound security roles`)")
    apply.add_argument("--bootstrap-servers", metavar="HOST:PORT,...",
                       help="bootstrap servers written into the files (default: the admin's), e.g. the address "
                       "venues reach the cluster at")
    apply.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    apply.set_defaults(handler=_security_apply)
    roles = actions.add_parser("roles", help="each role, who uses it and its ACLs",
                               description="Print each role, the commands that run as it and its ACLs "
                               "(with the deployment's CROWDSOUND_TOPIC_PREFIX).")
    roles.set_defaults(handler=_security_roles)


def _security_apply(args: argparse.Namespace, settings: Settings) -> int:
    from infra.acls import ROLES, role
    from infra.broker import default_security_dir
    from infra.clients import make_admin
    from infra.security import admin_settings, apply_security

    admin = admin_settings(settings)
    chosen = tuple(role(name) for name in args.roles) if args.roles else ROLES
    out = args.out or default_security_dir(settings)
    changes = apply_security(make_admin(admin), admin, out, roles=chosen, bootstrap=args.bootstrap_servers,
                             dry_run=args.dry_run)
    for change in changes:
        print(("(dry run) " if args.dry_run else "") + change.line())
    changed = sum(change.changed for change in changes)
    print(f"{changed} changed, {len(changes) - changed} unchanged; properties files in {out}/")
    return 0


def _security_roles(args: argparse.Namespace, settings: Settings) -> int:
    from infra.acls import ROLES, bindings, principal_name

    for the_role in ROLES:
        print(f"{the_role.name} (user {principal_name(the_role.name, settings.topic_prefix)}): {the_role.used_by}")
        for binding in bindings(the_role, settings.topic_prefix):
            star = "*" if binding.pattern == "prefixed" else ""
            print(f"  {binding.operation:<16} {binding.kind:<16} {binding.name}{star}")
    return 0


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from infra.clients import make_admin
    from infra.topics import apply_catalogue

    changes = apply_catalogue(make_admin(settings), settings, dry_run=args.dry_run)
    for change in changes:
        print(("(dry run) " if args.dry_run else "") + change.line())
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("created", "altered", "unchanged", "conflict")}
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 1 if counts["conflict"] else 0


def _human_ms(value: str | None) -> str:
    if value is None:
        return "-"
    ms = int(value)
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _human_bytes(value: str | None) -> str:
    if value is None:
        return "-"
    size = int(value)
    return f"{size // (1024 * 1024)}MiB" if size % (1024 * 1024) == 0 else f"{size}B"


def _topics_list(args: argparse.Namespace, settings: Settings) -> int:
    from infra.clients import make_admin
    from infra.topics import describe_catalogue

    rows = [("TOPIC", "VALUE", "PARTS", "RETENTION", "CLEANUP", "COMPRESSION", "MAX MSG", "")]
    for state in describe_catalogue(make_admin(settings), settings):
        c = state.configs
        rows.append((
            state.name, state.spec.value_type, str(state.partitions or "-"), _human_ms(c.get("retention.ms")),
            c.get("cleanup.policy", "-"), c.get("compression.type", "-"), _human_bytes(c.get("max.message.bytes")),
            "" if state.exists else "MISSING (run `crowdsound topics apply`)",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _register_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="the whole platform in a few minutes: a synthetic match, live music, highlights",
        description="Start the local broker, apply the topics, start a stream worker, a composer and the "
        "control room (its address is printed: open it to watch, hear and cue the match live), stream a "
        "scripted synthetic match in real time (--fast: accelerated) through the venue encoder and the "
        "match feed, write the live music with `listen`, then replay the match's highlights into --out "
        "and print a summary. The broker keeps running afterwards; stop it with `crowdsound broker down`.",
    )
    demo.add_argument("--out", default="out", metavar="DIR", help="folder for the files (default: ./out)")
    demo.add_argument("--script", metavar="FILE", help="match script (default: the stadium's demo.toml)")
    demo.add_argument("--highlights", type=whole_number(low=1, high=20), default=4, metavar="N",
                      help="how many highlights to replay (default 4)")
    demo.add_argument("--style", choices=("orchestral", "electronic", "stadium_rock"), help="music style of the replay")
    demo.add_argument("--secure", action="store_true",
                      help="on the secure broker (`broker up --secure`, port + 2): SASL_SSL with ACLs, every process "
                      "as its own role's principal (`security apply`)")
    demo.add_argument("--fast", action="store_true",
                      help="stream the match accelerated (about 1½ minutes, too fast to follow in the control room)")
    demo.add_argument("--port", type=whole_number(low=1, high=65535), default=8080, metavar="PORT",
                      help="port of the control room (default 8080; a free one when it is taken)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from infra.demo import DEMO_SCRIPT, DemoOptions, run_demo

    script = Path(args.script) if args.script else DEMO_SCRIPT
    if not script.is_file():
        raise CrowdsoundError(f"match script {script} does not exist")
    return run_demo(settings, DemoOptions(out_dir=Path(args.out), script=script, highlights=args.highlights,
                                          style=args.style, fast=args.fast, port=args.port,
                                          secure=args.secure))
