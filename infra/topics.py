"""Make a cluster's topics match the catalogue, and show what is there.

``apply`` is idempotent: it creates missing topics, alters configs that differ and reports
each change; run twice, the second run changes nothing. Partition counts are never changed
behind anyone's back: adding partitions moves matches to other partitions and breaks the
co-partitioned join for data already retained, so a mismatch is reported as a conflict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from infra.catalogue import CATALOGUE, TopicSpec, min_insync_replicas, topic_configs
from infra.errors import CrowdsoundError
from infra.settings import Settings

__all__ = ["TopicChange", "TopicState", "apply_catalogue", "describe_catalogue", "internal_topic_replication"]

ChangeKind = Literal["created", "altered", "unchanged", "conflict"]
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicChange:
    """What ``apply`` did (or would do) to one topic."""

    topic: str
    kind: ChangeKind
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind:<9} {self.topic}" + (f"  {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class TopicState:
    """A catalogue topic as the cluster has it (``exists=False`` when it is missing)."""

    spec: TopicSpec
    name: str
    exists: bool
    partitions: int | None
    configs: dict[str, str]


def _existing_partitions(admin: AdminClient) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise CrowdsoundError(f"cannot reach Kafka to list topics: {exc}") from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _current_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in names])
    result: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=_TIMEOUT_S)
        result[resource.name] = {key: entry.value for key, entry in entries.items()}
    return result


def describe_catalogue(admin: AdminClient, settings: Settings) -> list[TopicState]:
    """Each catalogue topic with its partition count and relevant configs on the cluster."""
    partitions = _existing_partitions(admin)
    names = [settings.topic(spec.name) for spec in CATALOGUE]
    configs = _current_configs(admin, [name for name in names if name in partitions])
    return [
        TopicState(spec=spec, name=name, exists=name in partitions, partitions=partitions.get(name),
                   configs={k: v for k, v in configs.get(name, {}).items() if k in topic_configs(spec, settings)})
        for spec, name in zip(CATALOGUE, names, strict=True)
    ]


def apply_catalogue(admin: AdminClient, settings: Settings, *, dry_run: bool = False) -> list[TopicChange]:
    """Create or alter every catalogue topic to match; return one change per topic.

    Raises
    ------
    CrowdsoundError
        When the cluster cannot be reached or refuses a change.
    """
    changes: list[TopicChange] = []
    to_create: list[NewTopic] = []
    for state in describe_catalogue(admin, settings):
        wanted_partitions = state.spec.partitions or settings.partitions
        wanted = topic_configs(state.spec, settings)
        if not state.exists:
            to_create.append(NewTopic(state.name, num_partitions=wanted_partitions,
                                      replication_factor=settings.replication_factor, config=wanted))
            changes.append(TopicChange(state.name, "created", f"{wanted_partitions} partitions, {_summary(wanted)}"))
            continue
        if state.partitions != wanted_partitions:
            changes.append(TopicChange(
                state.name, "conflict",
                f"has {state.partitions} partitions, catalogue wants {wanted_partitions}; not changed "
                "(repartitioning moves matches between partitions: recreate the topic to change it)",
            ))
        differing = {key: value for key, value in wanted.items() if state.configs.get(key) != value}
        if differing:
            detail = ", ".join(f"{key} {state.configs.get(key)} -> {value}" for key, value in differing.items())
            if not dry_run:
                _alter(admin, state.name, differing)
            changes.append(TopicChange(state.name, "altered", detail))
        elif state.partitions == wanted_partitions:
            changes.append(TopicChange(state.name, "unchanged"))
    if to_create and not dry_run:
        _create(admin, to_create)
    return changes


def internal_topic_replication(admin: AdminClient, settings: Settings) -> tuple[int, int]:
    """Replication factor and ``min.insync.replicas`` for the topics a process creates itself
    (the stream worker's changelog, the composer's state topic), which hold state that must
    survive a broker: ``CROWDSOUND_REPLICATION_FACTOR``, or else the broker's
    ``default.replication.factor`` (1 on the single local broker; clients such as Faust's need
    a number, not -1); see :func:`infra.catalogue.min_insync_replicas`.

    Raises
    ------
    CrowdsoundError
        When the cluster cannot be asked.
    """
    replicas = settings.replication_factor
    if replicas < 1:
        try:
            brokers = admin.list_topics(timeout=_TIMEOUT_S).brokers
            resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
            entries = next(iter(admin.describe_configs([resource]).values())).result(timeout=_TIMEOUT_S)
            replicas = int(entries["default.replication.factor"].value)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.CLUSTER_AUTHORIZATION_FAILED:
                raise CrowdsoundError(f"cannot read the cluster's default replication factor: {exc}") from None
            # A role's principal may not read the brokers' configs (infra/acls.py grants none):
            # as many copies as the cluster has brokers, up to the usual three.
            replicas = min(3, len(brokers))
        except (KeyError, ValueError) as exc:
            raise CrowdsoundError(f"cannot read the cluster's default replication factor: {exc}") from None
        replicas = max(1, min(replicas, len(brokers)))
    return replicas, min_insync_replicas(settings, replicas)


def _create(admin: AdminClient, topics: list[NewTopic]) -> None:
    for name, future in admin.create_topics(topics, operation_timeout=_TIMEOUT_S).items():
        try:
            future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                continue  # created concurrently by another `apply`: same catalogue, same result
            raise CrowdsoundError(f"creating topic {name} failed: {exc}") from None
    # The controller has created them; wait until the broker's metadata shows them too, so
    # whoever runs next (a producer, another `apply`) sees the topics.
    wanted = {topic.topic: topic.num_partitions for topic in topics}
    deadline = time.monotonic() + _TIMEOUT_S
    while time.monotonic() < deadline:
        existing = _existing_partitions(admin)
        if all(existing.get(name) == count for name, count in wanted.items()):
            return
        time.sleep(0.2)
    raise CrowdsoundError(f"topics created but not visible in metadata after {_TIMEOUT_S:.0f} s: {sorted(wanted)}")


def _alter(admin: AdminClient, name: str, configs: dict[str, str]) -> None:
    entries = [ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in configs.items()]
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        try:
            future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            raise CrowdsoundError(f"altering topic {name} failed: {exc}") from None


def _summary(configs: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in configs.items())
