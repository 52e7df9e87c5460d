"""Deployment checks: the Helm chart, the compose file, the Dockerfile, Prometheus and Grafana.

What runs here, and with which tool:

- ``helm lint --strict`` and ``helm template`` of ``helm/crowdsound`` with the defaults and
  with every ``ci/*-values.yaml`` (helm from ``infra/tools/install_helm.sh``);
- every rendered Kubernetes object validated against the Kubernetes OpenAPI schemas of the
  chart's oldest and newest supported versions, strictly (unknown fields fail), with
  kubernetes-validate; the custom resources (Strimzi KafkaTopic, KEDA ScaledObject and
  TriggerAuthentication, Prometheus operator ServiceMonitor and PrometheusRule) have no
  schema there and are checked structurally here, and the PrometheusRule by promtool;
- ``promtool check rules``, ``promtool check config`` and ``promtool test rules``
  (Debian's ``prometheus`` package);
- the compose file, the Dockerfile and the dashboard parsed and cross-checked (no Docker
  engine is needed);
- every ``crowdsound_*`` metric named by the alerts, the dashboard and the docs exists in the
  code with the right type and labels, so renaming a metric fails here.

A test whose tool is missing is skipped with the install command, except under CI
(``CI=true``), where ``.ci/run`` installs them all and a missing tool is a failure.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "crowdsound"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
INFRA = REPO / "infra"
PROMETHEUS = INFRA / "prometheus"
DASHBOARD = INFRA / "grafana" / "dashboards" / "crowdsound.json"
COMPOSE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"

# Kubernetes versions the rendered manifests are validated against: the chart's minimum
# (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
# Kinds without a schema in kubernetes-validate, checked structurally below.
CUSTOM_KINDS = {"KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}

# The composer's metrics, defined in consumers/composer.py: name -> (type, labels).
COMPOSER_METRICS = {
    "crowdsound_composer_windows_total": ("Counter", {"revised"}),
    "crowdsound_composer_controls_total": ("Counter", {"kind"}),
    "crowdsound_composer_audio_seconds_total": ("Counter", set()),
    "crowdsound_composer_audio_gap_seconds_total": ("Counter", set()),
    "crowdsound_composer_dead_letters_total": ("Counter", {"topic"}),
    "crowdsound_composer_tempo_bpm": ("Gauge", {"match_id"}),
    "crowdsound_composer_intensity": ("Gauge", {"match_id"}),
    "crowdsound_composer_matches": ("Gauge", set()),
    "crowdsound_composer_emotion_to_output_seconds": ("Histogram", set()),
    "crowdsound_composer_batch_seconds": ("Histogram", set()),
    "crowdsound_composer_cues_total": ("Counter", {"type", "outcome"}),
}
# Labels every scraped series has, or that Prometheus/our scrape configs add.
TARGET_LABELS = {"instance", "job", "venue", "le"}
KAFKA_EXPORTER_LABELS = {"consumergroup", "topic", "partition"}


# -- tools -----------------------------------------------------------------------------------

def _missing(tool: str, how: str) -> None:
    message = f"{tool} is not installed: {how}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run should have installed it)")
    pytest.skip(message)


@cache
def _helm_path() -> str | None:
    local = REPO / ".crowdsound" / "bin" / "helm"
    if local.is_file():
        return str(local)
    return shutil.which("helm")


def helm() -> str:
    path = _helm_path()
    if path is None:
        _missing("helm", "run infra/tools/install_helm.sh (builds the pinned helm into .crowdsound/bin)")
    return path  # type: ignore[return-value]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _missing("promtool", "apt-get install prometheus (Debian's package ships /usr/bin/promtool)")
    return path  # type: ignore[return-value]


def yaml_module() -> Any:
    try:
        import yaml
    except ImportError:
        _missing("PyYAML", ".venv/bin/pip install pyyaml")
    return yaml


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as kv
    except ImportError:
        _missing("kubernetes-validate", ".venv/bin/pip install kubernetes-validate")
    return kv


# -- rendering -------------------------------------------------------------------------------

def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@cache
def _render(values_file: str | None, sets: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    args = ["template", "demo", str(CHART), "--namespace", "music"]
    if values_file:
        args += ["-f", values_file]
    for item in sets:
        args += ["--set", item]
    output = run_helm(*args).stdout
    return tuple(doc for doc in yaml_module().safe_load_all(output) if doc)


def render(values_file: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    return list(_render(str(values_file) if values_file else None, tuple(sets)))


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [doc for doc in kinds(docs, kind) if doc["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc, doc["spec"]
        elif doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def env_of(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The container's environment: ConfigMap values (envFrom) overlaid by env entries."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(one([d for d in docs if d["metadata"]["name"] == name], "ConfigMap")["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


MODES = [pytest.param(None, id="defaults"), *(pytest.param(p, id=p.name) for p in CI_VALUES)]


# -- the chart -------------------------------------------------------------------------------

def test_chart_has_a_ci_values_file_per_mode():
    names = {p.name for p in CI_VALUES}
    assert {"minimal-values.yaml", "sasl-tls-values.yaml", "strimzi-topics-values.yaml", "strimzi-users-values.yaml",
            "keda-monitoring-values.yaml", "plaintext-dev-values.yaml"} <= names, names


@pytest.mark.parametrize("values_file", MODES)
def test_helm_lint_strict(values_file):
    args = ["lint", "--strict", str(CHART)]
    if values_file:
        args += ["-f", str(values_file)]
    result = run_helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


def _validate_custom(doc: dict[str, Any]) -> None:
    """Structural checks of the custom resources the chart renders (no schema ships for them)."""
    kind, spec = doc["kind"], doc["spec"]
    if kind == "KafkaTopic":
        assert doc["apiVersion"] in ("kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1")
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert set(spec) == {"topicName", "partitions", "replicas", "config"}
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1
        assert isinstance(spec["replicas"], int) and 1 <= spec["replicas"] <= 32767
        assert all(isinstance(v, str) for v in spec["config"].values())
    elif kind == "KafkaUser":
        assert doc["apiVersion"] in ("kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1")
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert set(spec) == {"authentication", "authorization"}
        assert spec["authentication"] == {"type": "scram-sha-512"}
        assert spec["authorization"]["type"] == "simple"
        for acl in spec["authorization"]["acls"]:
            assert set(acl) == {"resource", "operations", "host"}
            assert acl["resource"]["type"] in ("topic", "group", "transactionalId")
            assert acl["resource"]["patternType"] in ("literal", "prefix") and acl["resource"]["name"]
            assert set(acl["operations"]) <= {"Read", "Write", "Create", "Describe", "DescribeConfigs"}
    elif kind == "ScaledObject":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                             "cooldownPeriod", "advanced", "triggers", "idleReplicaCount", "fallback"}
        assert spec["scaleTargetRef"]["name"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            assert set(trigger) <= {"type", "metadata", "authenticationRef", "name", "useCachedMetrics"}
            # KEDA's trigger metadata is a map of strings: a number here is rejected.
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
            assert {"bootstrapServers", "consumerGroup", "lagThreshold"} <= set(trigger["metadata"])
    elif kind == "TriggerAuthentication":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert set(spec) <= {"secretTargetRef", "env", "configMapTargetRef"}
        for ref in spec.get("secretTargetRef", []):
            assert set(ref) == {"parameter", "name", "key"}
        for ref in spec.get("env", []):
            assert set(ref) == {"parameter", "name", "containerName"}
    elif kind == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"}
    elif kind == "PrometheusRule":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(spec) == {"groups"}
    else:  # pragma: no cover - a new custom kind needs its own checks
        pytest.fail(f"no structural check for {kind}")


@pytest.mark.parametrize("values_file", MODES)
def test_rendered_manifests_validate_against_kubernetes_schemas(values_file):
    kv = kubernetes_validate()
    docs = render(values_file)
    assert docs
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CUSTOM_KINDS:
            _validate_custom(doc)
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {exc}")


@pytest.mark.parametrize("values_file", MODES)
def test_every_object_has_the_standard_labels_and_every_pod_is_locked_down(values_file):
    docs = render(values_file)
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        for key in ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of"):
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks label {key}"
    specs = list(pod_specs(docs))
    assert specs
    for doc, spec in specs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["state"], where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", where
            state_dir = env_of(container, docs)["CROWDSOUND_STATE_DIR"]
            assert mounts[state_dir] == "state", where
            # Faust keeps its table data in the working directory: it must be writable.
            assert container["workingDir"] == state_dir, where
            assert container["resources"]["requests"], where


@pytest.mark.parametrize("values_file", MODES)
def test_notes_render_in_every_mode(values_file, tmp_path):
    # `helm template` does not render NOTES.txt and `helm install --dry-run` needs a cluster, so
    # render it through tpl in a copy of the chart.
    chart = tmp_path / "crowdsound"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "files/NOTES.txt") . | nindent 4 }}\n')
    args = ["template", "demo", str(chart), "-n", "music", "--show-only", "templates/zz-notes.yaml"]
    if values_file:
        args += ["-f", str(values_file)]
    notes = yaml_module().safe_load(run_helm(*args).stdout)["data"]["notes"]
    assert "helm test demo -n music" in notes
    assert "deploy/demo-crowdsound-worker" in notes
    assert "The venue encoder runs at the venue" in notes
    assert "deploy/demo-crowdsound-composer" in notes
    assert re.search(r"consumer group: ([a-z]+\.)?crowdsound-composer-audio-control\n", notes), notes
    assert "PLACEHOLDER" not in notes


def test_worker_deployment_runs_the_worker_with_metrics_and_health_probes():
    docs = render()
    deployment = one(docs, "Deployment", "-worker")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker"]
    port = container["ports"][0]
    assert port["name"] == "metrics"
    env = env_of(container, docs)
    assert env["CROWDSOUND_METRICS_PORT"] == str(port["containerPort"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    service = one(docs, "Service", "-worker-metrics")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pdb = one(docs, "PodDisruptionBudget", "-worker")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["replicas"] == 1
    assert int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) >= 30


def _settings_env_names() -> set[str]:
    source = (INFRA / "settings.py").read_text()
    names = set(re.findall(r'"((?:KAFKA|CROWDSOUND)_[A-Z_]+)"', source))
    return {n for n in names if n != "KAFKA_CLIENT_"}


CONTROLROOM_SETTINGS = {"CROWDSOUND_API_TOKENS", "CROWDSOUND_API_PUBLIC_READ", "CROWDSOUND_API_CORS_ORIGINS"}


def test_chart_sets_every_setting_of_infra_settings():
    """A setting added to infra/settings.py must reach the pods (or be listed here as local-only)."""
    # The development broker's port; a librdkafka properties file (the chart sets the variables).
    local_only = {"CROWDSOUND_BROKER_PORT", "KAFKA_CONFIG_FILE"}
    docs = render(CHART / "ci" / "sasl-tls-values.yaml")
    container = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container, docs)
    # The control room's own settings reach the control room (and only it: tokens are secrets).
    room = one(render(CHART / "ci" / "controlroom-values.yaml"), "Deployment", "-controlroom")
    assert CONTROLROOM_SETTINGS <= set(env_of(room["spec"]["template"]["spec"]["containers"][0], docs))
    assert not CONTROLROOM_SETTINGS & set(env)
    missing = _settings_env_names() - local_only - CONTROLROOM_SETTINGS - set(env)
    assert not missing, (f"settings of infra/settings.py the chart does not set: {sorted(missing)}; add each to "
                         "helm/crowdsound (values.yaml config, values.schema.json, crowdsound.configData in "
                         "templates/_helpers.tpl) or, if it only matters on a developer machine, to local_only here")
    assert env["KAFKA_CLIENT_LINGER_MS"] == "20"
    assert env["KAFKA_CLIENT_SOCKET_KEEPALIVE_ENABLE"] == "true"
    composer = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]
    assert {k: v for k, v in env_of(composer, docs).items() if k not in ("CROWDSOUND_METRICS_PORT", "POD_NAME")} == \
        {k: v for k, v in env.items() if k not in ("CROWDSOUND_METRICS_PORT", "POD_NAME")}
    # ... and every value the ConfigMap sets is one infra/settings.py reads.
    unknown = {k for k in env if not k.startswith("KAFKA_CLIENT_") and k not in _settings_env_names() | {"POD_NAME"}}
    assert not unknown, unknown


def test_the_topics_job_applies_the_catalogue_before_install_and_upgrade():
    docs = render()
    job = one(docs, "Job", "-topics")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["topics", "apply"]
    # A hook runs before the release's own ConfigMap exists: it uses a hook-scoped copy, made first.
    config = one(docs, "ConfigMap", "-topics")
    assert config["metadata"]["annotations"]["helm.sh/hook"] == hooks["helm.sh/hook"]
    assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    assert config["data"] == one(docs, "ConfigMap", "demo-crowdsound")["data"]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    service_account = job["spec"]["template"]["spec"]["serviceAccountName"]
    assert one(docs, "ServiceAccount", service_account)["metadata"]["annotations"]["helm.sh/hook"]
    assert not kinds(docs, "KafkaTopic")


def test_the_topics_job_gets_hook_copies_of_chart_made_secrets():
    docs = render(CHART / "ci" / "sasl-inline-values.yaml")
    job = one(docs, "Job", "-topics")
    secret = one(docs, "Secret", "-topics")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(secret["data"]) == {"password", "ca.crt", "KAFKA_CLIENT_SSL_KEY_PASSWORD"}
    spec = job["spec"]["template"]["spec"]
    password = spec["containers"][0]["env"][0]
    assert password["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "password"}
    ca = next(v for v in spec["volumes"] if v["name"] == "kafka-ca")
    assert ca["secret"]["secretName"] == secret["metadata"]["name"]


def test_strimzi_topics_are_the_catalogue():
    from infra.catalogue import CATALOGUE, topic_configs

    docs = render(CHART / "ci" / "strimzi-topics-values.yaml")
    topics = {doc["spec"]["topicName"]: doc for doc in kinds(docs, "KafkaTopic")}
    assert set(topics) == {f"staging.{spec.name}" for spec in CATALOGUE} | {"staging.crowdsound-composer-state"}
    for spec in CATALOGUE:
        topic = topics[f"staging.{spec.name}"]
        assert topic["metadata"]["namespace"] == "kafka"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["spec"]["partitions"] == (spec.partitions or 24)
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"] == topic_configs(spec)
    assert not kinds(docs, "Job")
    # Without the composer, no state topic.
    docs = render(CHART / "ci" / "strimzi-topics-values.yaml", "composer.enabled=false")
    assert "staging.crowdsound-composer-state" not in {d["spec"]["topicName"] for d in kinds(docs, "KafkaTopic")}


@pytest.mark.kafka
def test_strimzi_state_topic_is_the_one_the_composer_creates(settings):
    """The KafkaTopic of the composer's state topic has the partitions and settings the composer
    gives the topic it creates on a real broker."""
    from confluent_kafka.admin import ConfigResource, ConfigSource

    import consumers.composer as composer
    from infra.clients import make_admin

    docs = render(CHART / "ci" / "strimzi-topics-values.yaml")
    (topic,) = [d for d in kinds(docs, "KafkaTopic") if d["spec"]["topicName"] == "staging.crowdsound-composer-state"]
    settings = settings.with_overrides(partitions=topic["spec"]["partitions"])
    composer._ensure_state_topic(settings)
    name = composer.state_topic(settings)
    assert name == f"{settings.topic_prefix}crowdsound-composer-state"
    admin = make_admin(settings)
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == topic["spec"]["partitions"] == 24
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)]).values()
    explicit = {key: entry.value for key, entry in future.result(timeout=30).items()
                if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    chart = dict(topic["spec"]["config"])
    # min.insync.replicas follows the replicas (infra/topics.py): 1 on the single local broker,
    # 2 on the three-replica cluster of these values.
    assert (explicit.pop("min.insync.replicas"), chart.pop("min.insync.replicas")) == ("1", "2")
    assert topic["spec"]["replicas"] == 3
    assert chart == explicit


def test_topics_and_acls_files_are_generated_from_the_catalogue():
    sys.path.insert(0, str(INFRA / "tools"))
    try:
        import render_topics
    finally:
        sys.path.remove(str(INFRA / "tools"))
    assert render_topics.TARGET.read_text(encoding="utf-8") == render_topics.render(), (
        "helm/crowdsound/files/topics.yaml is stale: run python infra/tools/render_topics.py")
    assert render_topics.ACLS_TARGET.read_text(encoding="utf-8") == render_topics.render_acls(), (
        "helm/crowdsound/files/acls.yaml is stale: run python infra/tools/render_topics.py")


def test_chart_copies_of_alerts_and_dashboard_are_up_to_date():
    result = subprocess.run([sys.executable, str(INFRA / "tools" / "sync_chart_files.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_sasl_tls_from_existing_secrets():
    docs = render(CHART / "ci" / "sasl-tls-values.yaml")
    assert not kinds(docs, "Secret"), "existing Secrets must not be re-created by the chart"
    spec = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = env_of(container, docs)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": "crowdsound", "key": "password"}}
    ca_mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
    ca_volume = next(v for v in spec["volumes"] if v["name"] == "kafka-ca")
    assert ca_volume["secret"]["secretName"] == "prod-cluster-ca-cert"
    assert env["KAFKA_SSL_CA_LOCATION"] == f"{ca_mount['mountPath']}/{ca_volume['secret']['items'][0]['path']}"
    assert env["CROWDSOUND_TOPIC_PREFIX"] == "prod."
    assert container["args"] == ["worker", "--instance-id=$(POD_NAME)"]
    assert spec["containers"][0]["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    composer = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]
    assert composer["volumes"] == spec["volumes"]
    assert env_of(composer["containers"][0], docs)["KAFKA_SASL_PASSWORD"] == env["KAFKA_SASL_PASSWORD"]


def _faust_group_suffix() -> str:
    """The Faust app id (= consumer group) as streams/app.py builds it after the prefix."""
    source = (REPO / "streams" / "app.py").read_text()
    match = re.search(r'faust\.App\(\s*f"\{settings\.topic_prefix\}([^"]+)"', source)
    assert match, "streams/app.py no longer names the Faust app <prefix>...; update the chart's consumer group"
    return match.group(1)


def test_keda_scales_on_the_lag_of_the_faust_group():
    docs = render(CHART / "ci" / "keda-monitoring-values.yaml", "config.topicPrefix=prod.")
    scaled = one(docs, "ScaledObject", "-worker")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["metadata"]["consumerGroup"] == "prod." + _faust_group_suffix()
    assert scaled["spec"]["scaleTargetRef"]["name"] == one(docs, "Deployment", "-worker")["metadata"]["name"]
    assert "replicas" not in one(docs, "Deployment", "-worker")["spec"], "the autoscaler owns replicas"
    assert not kinds(docs, "HorizontalPodAutoscaler"), "KEDA makes its own HPA"
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    plain = render(CHART / "ci" / "plaintext-dev-values.yaml", "worker.autoscaling.keda.enabled=true")
    assert "authenticationRef" not in one(plain, "ScaledObject", "-worker")["spec"]["triggers"][0]
    # With SASL and a CA, KEDA authenticates like the worker does.
    docs = render(CHART / "ci" / "sasl-inline-values.yaml")
    trigger = one(docs, "ScaledObject", "-worker")["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "plaintext" and trigger["metadata"]["tls"] == "enable"
    assert trigger["metadata"]["topic"] == "crowd.audio.v1"
    auth = one(docs, "TriggerAuthentication", "-worker")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"]["name"] == one(docs, "Secret", "demo-crowdsound")["metadata"]["name"]
    assert refs["ca"]["name"] == one(docs, "Secret", "-kafka-ca")["metadata"]["name"]
    assert auth["spec"]["env"][0]["name"] == "KAFKA_SASL_USERNAME"


def _composer_group(prefix: str, outputs: tuple[str, ...]) -> str:
    """The composer's consumer group, as consumers/composer.py builds it."""
    from consumers.composer import _group_id
    from consumers.composer_config import ComposerConfig
    from infra.settings import Settings

    return _group_id(Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": prefix}), ComposerConfig(outputs=outputs))


@pytest.mark.parametrize(("outputs", "args"), [
    (None, []),
    ("{control,audio}", []),
    ("{audio,control}", []),
    ("{control}", ["--outputs", "control"]),
    ("{audio}", ["--outputs", "audio"]),
])
def test_composer_outputs_pick_the_arguments_and_the_consumer_group_keda_watches(outputs, args):
    sets = ["config.topicPrefix=prod.", "composer.autoscaling.keda.enabled=true"]
    if outputs:
        sets.append(f"composer.outputs={outputs}")
    docs = render(None, *sets)
    container = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["composer", "--instance", "$(POD_NAME)", *args]
    _parse_cli(container["args"])
    parsed = _cli_parser().parse_args(container["args"])
    trigger = one(docs, "ScaledObject", "-composer")["spec"]["triggers"][0]
    assert trigger["metadata"]["consumerGroup"] == _composer_group("prod.", parsed.outputs)
    assert "replicas" not in one(docs, "Deployment", "-composer")["spec"], "the autoscaler owns replicas"
    assert not kinds(docs, "HorizontalPodAutoscaler"), "KEDA makes its own HPA"


@pytest.mark.parametrize(("threads", "args"), [(None, []), ("2", []), ("4", ["--render-threads", "4"])])
def test_composer_render_threads_reach_the_command_line(threads, args):
    docs = render(None, *([f"composer.renderThreads={threads}"] if threads else []))
    container = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["composer", "--instance", "$(POD_NAME)", *args]
    assert _cli_parser().parse_args(container["args"]).render_threads == int(threads or 2)


@pytest.mark.parametrize(("gather", "args"), [(None, []), ("10", []), ("25", ["--gather-ms", "25"]),
                                             ("0", ["--gather-ms", "0"])])
def test_composer_gather_reaches_the_command_line(gather, args):
    docs = render(None, *([f"composer.gatherMs={gather}"] if gather else []))
    container = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["composer", "--instance", "$(POD_NAME)", *args]
    assert _cli_parser().parse_args(container["args"]).gather_ms == int(gather or 10)


def test_hpa_and_network_policy():
    docs = render(CHART / "ci" / "hpa-networkpolicy-values.yaml")
    hpa = one(docs, "HorizontalPodAutoscaler", "-worker")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert not kinds(docs, "Job"), "topics.mode none renders no topics Job"
    assert all(spec["serviceAccountName"] == "crowdsound-existing" for _, spec in pod_specs(docs))
    assert not kinds(docs, "ServiceAccount")
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [9400, 9402]
    # Only Prometheus (by default: its pods in the monitoring namespace) may scrape.
    assert policy["spec"]["ingress"][0]["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    docs = render(CHART / "ci" / "hpa-networkpolicy-values.yaml", "composer.enabled=false")
    assert [p["port"] for p in one(docs, "NetworkPolicy")["spec"]["ingress"][0]["ports"]] == [9400]


def test_monitoring_resources_and_restricted_egress():
    docs = render(CHART / "ci" / "keda-monitoring-values.yaml")
    monitor = one(docs, "ServiceMonitor", "-worker")
    service_labels = one(docs, "Service", "-worker-metrics")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "crowdsound-worker"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    composer_monitor = one(docs, "ServiceMonitor", "-composer")
    assert composer_monitor["spec"]["selector"]["matchLabels"].items() <= \
        one(docs, "Service", "-composer-metrics")["metadata"]["labels"].items()
    assert composer_monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "crowdsound-composer"
    rule = one(docs, "PrometheusRule")
    alerts = yaml_module().safe_load((PROMETHEUS / "alerts.yml").read_text())
    assert rule["spec"] == alerts
    dashboard = one(docs, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["crowdsound.json"]) == json.loads(DASHBOARD.read_text())
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {53, 9092}
    template_annotations = one(docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert "prometheus.io/scrape" not in template_annotations


def test_prometheus_rule_rendered_by_the_chart_passes_promtool(tmp_path):
    tool = promtool()
    rule = one(render(CHART / "ci" / "keda-monitoring-values.yaml"), "PrometheusRule")
    path = tmp_path / "rule.yml"
    path.write_text(yaml_module().safe_dump(rule["spec"]))
    result = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_composer_runs_by_default_with_its_pod_name_as_instance_metrics_and_probes():
    docs = render()
    deployment = one(docs, "Deployment", "-composer")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"] == ["composer", "--instance", "$(POD_NAME)"]
    env = env_of(container, docs)
    # The transactional id is <group>-<instance>: each pod names itself with its own pod name.
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    port = container["ports"][0]
    assert port == {"name": "metrics", "containerPort": 9402, "protocol": "TCP"}
    assert env["CROWDSOUND_METRICS_PORT"] == "9402"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    # Sized for the synthesizers: the 148 MB SoundFont once per render thread plus once, a core
    # per render thread (2 by default, so --render-threads is not passed).
    resources = container["resources"]
    assert resources["requests"]["cpu"] in ("2", "2000m") and resources["requests"]["memory"] == "768Mi"
    assert resources["limits"]["memory"] == "1536Mi"
    service = one(docs, "Service", "-composer-metrics")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0] == {"name": "metrics", "port": 9402, "targetPort": "metrics", "protocol": "TCP"}
    assert one(docs, "PodDisruptionBudget", "-composer")["spec"]["selector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["replicas"] == 1
    assert int(spec["terminationGracePeriodSeconds"]) >= 30
    assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "composer"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9402"
    # The worker does not get a pod name it does not use.
    worker = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    assert "POD_NAME" not in env_of(worker, docs)
    # composer.enabled=false removes every composer object.
    off = render(None, "composer.enabled=false")
    assert not [d for d in off if d["metadata"]["name"].endswith(("-composer", "-composer-metrics"))]
    assert one(off, "Deployment", "-worker")


def test_composer_extra_args_and_env_reach_the_container():
    docs = render(None, "composer.extraArgs={--metrics-port=9402}", "composer.extraEnv[0].name=CROWDSOUND_SOUNDFONT",
                  "composer.extraEnv[0].value=/fonts/other.sf2")
    container = one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["composer", "--instance", "$(POD_NAME)", "--metrics-port=9402"]
    _parse_cli(container["args"])
    assert env_of(container, docs)["CROWDSOUND_SOUNDFONT"] == "/fonts/other.sf2"


def test_controlroom_is_off_by_default_and_serves_page_api_and_metrics_on_one_port():
    assert not [d for d in render() if d["metadata"]["name"].endswith(("-controlroom", "-controlroom-tokens"))]
    docs = render(CHART / "ci" / "controlroom-values.yaml")
    deployment = one(docs, "Deployment", "-controlroom")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["controlroom", "--host", "0.0.0.0", "--port", "8080", "--lookback", "60"]
    _parse_cli(container["args"])
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    env = env_of(container, docs)
    secret = one(docs, "Secret", "-controlroom-tokens")
    assert env["CROWDSOUND_API_TOKENS"] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "tokens"}}
    tokens = base64.b64decode(secret["data"]["tokens"]).decode()
    assert sorted(tokens.split(",")) == ["alice=alice-token-0123456789", "bob=bob-token-0123456789"]
    from infra.settings import Settings

    # Values from Secrets (the SASL password) are there in the pod too: a stand-in for each.
    settings = Settings.from_env({k: v if isinstance(v, str) else "from-a-secret" for k, v in env.items()}
                                 | {"CROWDSOUND_API_TOKENS": tokens})
    assert sorted(settings.api_tokens.values()) == ["alice", "bob"] and not settings.api_public_read
    assert settings.api_cors_origins == ("https://playout.example.org",)
    service = one(docs, "Service", "-controlroom")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    monitor = one(docs, "ServiceMonitor", "-controlroom")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "crowdsound-controlroom"
    rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
    room_rule = next(r for r in rules if r["ports"] == [{"port": 8080, "protocol": "TCP"}])
    assert room_rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "broadcast"
    # An existing Secret instead of inline tokens: no Secret made, the reference follows.
    docs = render(None, "controlroom.enabled=true", "controlroom.tokens.existingSecret=operators")
    assert not [d for d in kinds(docs, "Secret") if d["metadata"]["name"].endswith("-tokens")]
    container = one(docs, "Deployment", "-controlroom")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container, docs)["CROWDSOUND_API_TOKENS"]["secretKeyRef"]["name"] == "operators"


def test_no_placeholders_are_left():
    found = []
    for folder in ("helm", "infra", "README.md"):
        root = REPO / folder
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and path.suffix in {"", ".md", ".py", ".yaml", ".yml", ".json", ".tpl", ".txt"} \
                    and "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8", errors="replace")
                if re.search(r"PLACEHOLDER\(composer\)|\(PENDING\b", text):
                    found.append(str(path.relative_to(REPO)))
    assert not found, found


@pytest.mark.parametrize(("sets", "message"), [
    (("worker.autoscaling.hpa.enabled=true", "worker.autoscaling.keda.enabled=true"), "enable hpa or keda, not both"),
    (("kafka.sasl.mechanism=",), "kafka.sasl.mechanism is required"),
    (("kafka.sasl.mechanism=PLAIN", "kafka.sasl.existingSecret="),
     "kafka.sasl.password or kafka.sasl.existingSecret is required"),
    (("kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.mechanism=PLAIN"), "sends the password in clear text"),
    (("kafka.strimziUsers.enabled=true",), "needs topics.mode strimzi or none"),
    (("kafka.strimziUsers.enabled=true", "topics.mode=none", "kafka.sasl.mechanism=SCRAM-SHA-256"),
     "with kafka.sasl.mechanism SCRAM-SHA-512"),
    (("networkPolicy.metricsFrom=null",), "metricsFrom"),
    (("config.windowLengthMs=2500",), "must be a multiple of config.windowHopMs"),
    (("worker.replicasCount=2",), "additional properties 'replicasCount' not allowed"),
    (("kafka.securityProtocol=TLS",), "securityProtocol"),
    (("topics.mode=operator",), "mode"),
    (("composer.outputs={audio,video}",), "value must be one of 'control', 'audio'"),
    (("composer.outputs=null",), "outputs"),
    (("composer.renderThreads=0",), "renderThreads"),
    (("composer.staticMembership=true",), "additional properties 'staticMembership' not allowed"),
    (("composer.autoscaling.hpa.enabled=true", "composer.autoscaling.keda.enabled=true"), "composer.autoscaling: enable hpa or keda"),
])
def test_bad_values_are_refused_with_a_message(sets, message):
    args = ["template", "demo", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = run_helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def _schema_node(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node or "allOf" in node:
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        else:
            node = _schema_node(schema, node["allOf"][0])
    return node


def _value_lines() -> dict[tuple[str, ...], bool]:
    """Each key path of values.yaml, and whether a comment line sits right above it."""
    documented: dict[tuple[str, ...], bool] = {}
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
        if match and not line.lstrip().startswith("-"):
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            documented[tuple(key for _, key in stack)] = previous.lstrip().startswith("#")
        if line.strip():
            previous = line
    return documented


def test_values_schema_covers_and_documents_every_value():
    yaml = yaml_module()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = _value_lines()
    problems: list[str] = []

    def walk(value: Any, node: dict[str, Any], path: tuple[str, ...]) -> None:
        node = _schema_node(schema, node)
        if not node.get("description"):
            problems.append(f"{'.'.join(path)}: no description in the schema")
        properties = node.get("properties")
        if properties is None or not isinstance(value, dict):
            # A leaf (or a free-form Kubernetes object): its own line, or its parent's, is commented.
            if not (documented.get(path) or documented.get(path[:-1])):
                problems.append(f"{'.'.join(path)}: no comment in values.yaml")
            return
        if node.get("additionalProperties") is not False:
            problems.append(f"{'.'.join(path)}: the schema allows unknown keys")
        for key in sorted(set(properties) | set(value)):
            if key not in properties:
                problems.append(f"{'.'.join(path + (key,))}: not in the schema")
            elif key not in value:
                if key != "global" and key in node.get("required", []):
                    problems.append(f"{'.'.join(path + (key,))}: required by the schema, no default")
            else:
                walk(value[key], properties[key], path + (key,))

    root = dict(schema, description="root")
    walk(values, root, ())
    assert not problems, "\n".join(problems)


@pytest.mark.kafka
def test_helm_test_probe_round_trips_a_message_through_the_secure_broker(secure_roles, tmp_path):
    """Run the `helm test` Pod's script as written, with the chart's default (SASL_SSL,
    SCRAM-SHA-512) settings, as the probe role, against the secure test broker."""
    docs = render()
    pod = one(docs, "Pod", "-test-kafka-roundtrip")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-ec"]
    env = {k: v for k, v in env_of(container, docs).items() if isinstance(v, str)}
    assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    probe = secure_roles.settings("probe")
    env.update({
        # What the Secret and the CA mount give the pod in a cluster:
        "KAFKA_BOOTSTRAP_SERVERS": probe.bootstrap_servers, "KAFKA_SASL_USERNAME": probe.sasl_username,
        "KAFKA_SASL_PASSWORD": probe.sasl_password, "KAFKA_SSL_CA_LOCATION": probe.ssl_ca_location,
        "CROWDSOUND_TOPIC_PREFIX": probe.topic_prefix, "CROWDSOUND_STATE_DIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    })
    assert shutil.which("crowdsound", path=env["PATH"]), "the crowdsound command is not installed next to python"
    script = container["args"][0].replace("/tmp/probe.jsonl", str(tmp_path / "probe.jsonl"))
    result = subprocess.run(["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: Kafka round trip" in result.stdout


def test_the_chart_is_secure_by_default():
    docs = render()
    config = one(docs, "ConfigMap", "demo-crowdsound")["data"]
    assert (config["KAFKA_SECURITY_PROTOCOL"], config["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    worker = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(worker, docs)["KAFKA_SASL_PASSWORD"] == \
        {"secretKeyRef": {"name": "crowdsound-kafka", "key": "password"}}
    assert config["CROWDSOUND_METRICS_HOST"] == "0.0.0.0"  # inside the pod; the NetworkPolicy guards it
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"], "scrapes are limited to a selector"
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [9400, 9402]


SECRET_LOOKING = ["ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.keystore.password", "sasl.jaas.config",
                  "ssl.key.pem", "sasl.oauthbearer.token.endpoint.url", "client.credentials.file"]
PLAIN_LOOKING = ["linger.ms", "client.id", "ssl.endpoint.identification.algorithm", "socket.keepalive.enable"]


def test_secret_looking_client_properties_go_to_the_secret_never_to_a_configmap():
    from infra.kafka_security import is_secret_name

    assert all(is_secret_name(n) for n in SECRET_LOOKING) and not any(is_secret_name(n) for n in PLAIN_LOOKING)
    sets = [f"kafka.clientProperties.{name.replace('.', chr(92) + '.')}=value-of-{name.replace('.', '-')}"
            for name in SECRET_LOOKING + PLAIN_LOOKING]
    for values_file in (None, CHART / "ci" / "sasl-inline-values.yaml"):
        docs = render(values_file, *sets)
        configmaps = "\n".join(json.dumps(d["data"]) for d in kinds(docs, "ConfigMap")
                               if not d["metadata"]["name"].endswith("-dashboard"))
        secrets = {key for d in kinds(docs, "Secret") for key in d["data"]}
        for name in SECRET_LOOKING:
            variable = "KAFKA_CLIENT_" + name.upper().replace(".", "_")
            assert f"value-of-{name.replace('.', '-')}" not in configmaps, name
            assert variable in secrets, name
            for _, spec in pod_specs(docs):
                env = env_of(spec["containers"][0], docs)
                assert env[variable]["secretKeyRef"]["key"] == variable, (name, spec["containers"][0]["name"])
        for name in PLAIN_LOOKING:
            assert f"value-of-{name.replace('.', '-')}" in configmaps, name
        # And no SASL password is in a ConfigMap either.
        assert "not-a-real-password" not in configmaps


def _strimzi_operation(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def test_strimzi_users_are_the_roles_of_the_catalogue_and_each_pod_logs_in_as_its_own():
    from infra.acls import ROLES, bindings

    docs = render(CHART / "ci" / "strimzi-users-values.yaml")
    users = {doc["metadata"]["annotations"]["crowdsound/role"]: doc for doc in kinds(docs, "KafkaUser")}
    assert set(users) == {role.name for role in ROLES}
    kinds_ = {"topic": "topic", "group": "group", "transactionalId": "transactional_id"}
    patterns = {"literal": "literal", "prefix": "prefixed"}
    for role in ROLES:
        user = users[role.name]
        assert user["metadata"]["name"] == f"demo-crowdsound-{role.name}"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "prod"
        rendered = {(kinds_[acl["resource"]["type"]], acl["resource"]["name"], patterns[acl["resource"]["patternType"]],
                     operation) for acl in user["spec"]["authorization"]["acls"] for operation in acl["operations"]}
        expected = {(b.kind, b.name, b.pattern, _strimzi_operation(b.operation)) for b in bindings(role, "prod.")}
        assert rendered == expected, role.name
    for component, role in (("-worker", "worker"), ("-composer", "composer")):
        container = one(docs, "Deployment", component)["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container, docs)
        assert env["KAFKA_SASL_USERNAME"] == f"demo-crowdsound-{role}"
        assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": f"demo-crowdsound-{role}", "key": "password"}}
    probe = env_of(one(docs, "Pod", "-test-kafka-roundtrip")["spec"]["containers"][0], docs)
    assert probe["KAFKA_SASL_USERNAME"] == "demo-crowdsound-probe"
    assert not kinds(docs, "Secret"), "the KafkaUsers' Secrets are Strimzi's"
    auth = one(docs, "TriggerAuthentication", "-worker")
    assert {r["parameter"]: r["name"] for r in auth["spec"]["secretTargetRef"]}["password"] == "demo-crowdsound-worker"


def _cli_parser():
    from infra.cli import build_parser

    return build_parser()


def _parse_cli(argv: list[str]) -> None:
    try:
        _cli_parser().parse_args(argv)
    except SystemExit as exc:  # argparse refused the command line
        pytest.fail(f"`crowdsound {' '.join(argv)}` is not a valid command line (exit {exc.code})")


def test_commands_in_the_chart_exist_in_the_cli():
    docs = render(CHART / "ci" / "sasl-tls-values.yaml")
    _parse_cli(one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]["args"])
    _parse_cli(one(docs, "Deployment", "-composer")["spec"]["template"]["spec"]["containers"][0]["args"])
    _parse_cli(one(render(), "Job", "-topics")["spec"]["template"]["spec"]["containers"][0]["args"])
    script = one(render(), "Pod", "-test-kafka-roundtrip")["spec"]["containers"][0]["args"][0]
    lines = script.replace("\\\n", " ").splitlines()
    commands = [shlex.split(line.split(">")[0].replace('"$match"', "m")) for line in lines
                if line.strip().startswith("crowdsound ")]
    assert [c[1] for c in commands] == ["event", "tail"]
    for command in commands:
        _parse_cli(command[1:])


# -- docker compose and the Dockerfile ---------------------------------------------------------

@cache
def compose() -> dict[str, Any]:
    return yaml_module().safe_load(COMPOSE.read_text())


def test_compose_has_kafka_in_kraft_mode_topics_worker_prometheus_and_grafana():
    services = compose()["services"]
    assert {"kafka", "topics", "worker", "prometheus", "grafana", "kafka-exporter"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert not any("ZOOKEEPER" in key for key in env)
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID is a base64url UUID"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert services["worker"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]
    assert "127.0.0.1:9092:9092" in kafka["ports"] and advertised["HOST"] == "localhost:9092"
    assert services["topics"]["command"] == ["topics", "apply"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["worker"]["command"] == ["worker"]
    composer = services["composer"]
    assert "profiles" not in composer, "the composer starts by default"
    assert composer["command"][:1] == ["composer"] and "--instance" in composer["command"]
    assert composer["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert composer["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]
    assert "9402" in composer["healthcheck"]["test"][-1] and composer["environment"]["CROWDSOUND_METRICS_PORT"] == "9402"
    assert services["stadium"]["profiles"] == ["demo"]


def test_compose_crowdsound_services_use_the_dockerfile_and_known_settings():
    known = _settings_env_names()
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        for key in service["environment"]:
            assert key in known, f"{name}: {key} is not a setting of infra/settings.py"
        _parse_cli(service["command"])
        port = service["environment"].get("CROWDSOUND_METRICS_PORT")
        if port:
            assert f"127.0.0.1:{port}:{port}" in service["ports"], name
            # Inside the container, so that Prometheus can scrape it over the compose network.
            assert service["environment"]["CROWDSOUND_METRICS_HOST"] == "0.0.0.0", name


def test_compose_publishes_nothing_beyond_this_host_and_grafana_has_no_fixed_password():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    password = compose()["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password


def test_compose_mounts_files_that_exist_and_scrapes_its_services():
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
    config = yaml_module().safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"crowdsound-worker", "crowdsound-encoder", "crowdsound-composer", "kafka-exporter"} <= set(jobs)
    for job in jobs.values():
        for target in (t for static in job.get("static_configs", []) for t in static["targets"]):
            host, port = target.split(":")
            service = services[host]
            published = {p.split(":")[-1] for p in service.get("ports", [])}
            assert port in published, f"{job['job_name']} scrapes {target}, which {host} does not serve"
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"] if v.startswith(".")}
    assert set(config["rule_files"]) <= mounted


def test_dockerfile_is_python_slim_non_root_and_copies_every_package():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.findall(r"^FROM \$\{PYTHON_IMAGE\}", text, re.M), "every stage builds on python:3.11-slim"
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    assert re.search(r'^ENTRYPOINT \["crowdsound"\]$', text, re.M)
    copied = {source.rstrip("/") for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M)}
    copied |= {s for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M) for s in line.split()[:-1]}
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r"include = \[([^\]]*)\]", pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert package in copied, f"the Dockerfile does not copy the package {package}/"
    assert "README.md" in copied and "pyproject.toml" in copied
    # The state dir the image declares is the chart's default, writable mount.
    values = yaml_module().safe_load((CHART / "values.yaml").read_text())
    assert f"CROWDSOUND_STATE_DIR={values['volumes']['statePath']}" in text
    assert re.search(rf"^WORKDIR {values['volumes']['statePath']}$", text, re.M)
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"--uid {uid}" in text and f"USER {uid}:" in text


def test_dockerfile_runtime_image_can_render_the_composers_audio():
    """libfluidsynth and the General MIDI SoundFont the synthesizer looks for, in the final stage, always."""
    from consumers.render.synth import DEFAULT_SOUNDFONTS

    text = DOCKERFILE.read_text()
    runtime = text[[m.start() for m in re.finditer(r"^FROM ", text, re.M)][-1]:]
    installs = re.findall(r"apt-get install -y --no-install-recommends ([^;&\\\n]+)", runtime)
    unconditional = [line for line in installs if "ffmpeg" not in line]
    packages = {p for line in unconditional for p in line.split()}
    assert {"libfluidsynth3", "fluid-soundfont-gm"} <= packages, installs
    # fluid-soundfont-gm ships /usr/share/sounds/sf2/FluidR3_GM.sf2, the synthesizer's first choice.
    assert str(DEFAULT_SOUNDFONTS[0]) == "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    # The build checks that the composer loads both.
    assert re.search(r"^RUN .*load_fluidsynth\(\).*find_soundfont\(\)", runtime, re.M)


# -- Prometheus and Grafana ------------------------------------------------------------------

def test_promtool_accepts_the_rules_and_their_unit_tests():
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_promtool_accepts_the_scrape_config(tmp_path):
    tool = promtool()
    # The config names paths inside the Prometheus container; point them at the repository.
    text = (PROMETHEUS / "prometheus.yml").read_text().replace("/etc/prometheus/", f"{PROMETHEUS}/")
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = subprocess.run([tool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_grafana_dashboard_and_provisioning():
    yaml = yaml_module()
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "crowdsound"
    panels = [p for p in dashboard["panels"] if p["type"] not in ("row", "text")]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert "PENDING" not in json.dumps(dashboard)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for needed in ("Emotion windows", "Revisions", "Late match events", "Dead letters", "Emotion delay",
                   "Frames acknowledged", "Bytes acknowledged", "Spool depth", "Send latency", "Consumer lag",
                   "Composers up", "Tempo per match", "Intensity per match", "Emotion to music latency",
                   "Music composed without emotions", "Composer consumer lag"):
        assert needed in titles, needed
    datasource = yaml.safe_load((INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((INFRA / "grafana" / "provisioning" / "dashboards" / "crowdsound.yml").read_text())
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]


# -- metric names: documented == defined -----------------------------------------------------

_DEFINITION = re.compile(
    r'\b(Counter|Gauge|Histogram|Summary)\(\s*"(crowdsound_[a-z0-9_]+)"\s*,\s*"[^"]*"(?:\s*,\s*\[([^\]]*)\])?', re.S)


@cache
def _metric_definitions() -> dict[str, tuple[str, frozenset[str], str]]:
    """Exposed name -> (type, label names, module), from the Counter/Gauge/Histogram definitions."""
    found: dict[str, tuple[str, frozenset[str], str]] = {}
    for folder in ("schemas", "producers", "streams", "consumers", "infra"):
        for path in (REPO / folder).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for kind, name, labels in _DEFINITION.findall(path.read_text(encoding="utf-8")):
                if kind == "Counter" and not name.endswith("_total"):
                    name += "_total"  # prometheus_client exposes counters with _total
                found[name] = (kind, frozenset(ast.literal_eval(f"[{labels}]")) if labels else frozenset(), module)
    return found


def defined_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed name -> (type, label names)."""
    return {name: (kind, labels) for name, (kind, labels, _) in _metric_definitions().items()}


def _base_name(series: str) -> str:
    defined = defined_metrics()
    if series in defined:
        return series
    for suffix in ("_bucket", "_sum", "_count", "_created"):
        if series.endswith(suffix) and series[: -len(suffix)] in defined:
            return series[: -len(suffix)]
    return series


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard target."""
    yaml = yaml_module()
    found = []
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"alerts.yml {rule['alert']}", rule["expr"]))
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            found.append((f"dashboard {panel['title']!r}", target["expr"]))
    return found


def _documented_metric_names() -> dict[str, set[str]]:
    sources = [PROMETHEUS / "alerts.yml", PROMETHEUS / "prometheus.yml", DASHBOARD, CHART / "README.md",
               CHART / "values.yaml", CHART / "templates" / "NOTES.txt", REPO / "README.md"]
    names: dict[str, set[str]] = {}
    for path in sources:
        # Whole names only: `crowdsound_encoder_*` is a family, not a metric.
        for name in re.findall(r"\bcrowdsound_[a-z0-9_]*[a-z0-9](?![a-z0-9_*])", path.read_text(encoding="utf-8")):
            names.setdefault(name, set()).add(path.name)
    return names


def test_every_documented_metric_exists_in_the_code():
    defined = defined_metrics()
    assert "crowdsound_stream_windows_total" in defined and "crowdsound_encoder_spool_frames" in defined, \
        "the metric definitions were not found: has the way metrics are defined changed?"
    unknown = {}
    for name, where in _documented_metric_names().items():
        if _base_name(name) not in defined:
            unknown[name] = sorted(where)
    assert not unknown, f"metrics named in docs/alerts/dashboards but not defined in the code: {unknown}"


def test_the_composers_metrics_are_found_in_consumers_composer_and_used():
    definitions = _metric_definitions()
    for name, (kind, labels) in COMPOSER_METRICS.items():
        assert name in definitions, f"{name} is not defined in the code (consumers/composer.py)"
        assert definitions[name] == (kind, frozenset(labels), "consumers.composer"), (name, definitions[name])
    used = " ".join(expr for _, expr in _expressions())
    for name in ("crowdsound_composer_tempo_bpm", "crowdsound_composer_intensity",
                 "crowdsound_composer_emotion_to_output_seconds_bucket", "crowdsound_composer_audio_gap_seconds_total"):
        assert name in used, f"no alert or dashboard panel uses {name}"
    documented = _documented_metric_names()
    missing = [name for name in COMPOSER_METRICS if "README.md" not in documented.get(name, set())]
    assert not missing, f"the chart's README does not list {missing}"


def test_composer_lag_queries_match_the_composers_groups_only():
    """The alerts' and the dashboard's composer lag selector matches every group the composer joins."""
    pattern = None
    for _, expr in _expressions():
        match = re.search(r'kafka_consumergroup_lag\{consumergroup=~"([^"]*crowdsound-composer[^"]*)"\}', expr)
        if match:
            assert pattern in (None, match.group(1)), "the composer's lag selectors differ"
            pattern = match.group(1)
    assert pattern, "no alert or panel watches the composer's consumer lag"
    for outputs in (("audio", "control"), ("control",), ("audio",)):
        group = _composer_group("prod.", outputs)
        assert re.fullmatch(pattern, group), group
        # Its assign-only helper consumers commit nothing and are not the group.
        assert not re.fullmatch(pattern, group + "-restore")
    assert not re.fullmatch(pattern, "prod.crowdsound-streams")


def test_queries_use_each_metric_as_its_type_and_with_its_labels():
    defined = defined_metrics()
    problems = []
    for where, expr in _expressions():
        names = set(re.findall(r"\b(crowdsound_[a-z0-9_]+)", expr))
        allowed = set(TARGET_LABELS)
        if "kafka_consumergroup_lag" in expr:
            allowed |= KAFKA_EXPORTER_LABELS
        for series in names:
            base = _base_name(series)
            if base not in defined:
                problems.append(f"{where}: {series} is not defined")
                continue
            kind, labels = defined[base]
            allowed |= labels
            if series.endswith("_bucket") and kind != "Histogram":
                problems.append(f"{where}: {series} used as a histogram but {base} is a {kind}")
            if re.search(rf"\b(rate|increase|irate)\(\s*{series}\b", expr) and kind == "Gauge":
                problems.append(f"{where}: rate/increase of the gauge {series}")
            if kind == "Histogram" and series == base:
                problems.append(f"{where}: use {base}_bucket/_sum/_count, not the bare histogram name")
            for selector in re.findall(rf"\b{series}\{{([^}}]*)\}}", expr):
                for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector):
                    if label not in labels | TARGET_LABELS:
                        problems.append(f"{where}: {series} has no label {label!r}")
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (l.strip() for l in group.split(",") if l.strip()):
                if label not in allowed:
                    problems.append(f"{where}: groups by {label!r}, which none of its metrics has")
    assert not problems, "\n".join(problems)


def test_the_documented_metrics_are_registered_when_their_modules_load():
    """Importing the modules that define the metrics registers every documented series."""
    import importlib

    from prometheus_client import REGISTRY

    for module in sorted({module for _, _, module in _metric_definitions().values()}):
        importlib.import_module(module)
    registered = {sample.name for family in REGISTRY.collect() for sample in family.samples} | \
        {family.name for family in REGISTRY.collect()}
    for name in _documented_metric_names():
        base = _base_name(name)
        if base not in defined_metrics():
            continue  # reported by test_every_documented_metric_exists_in_the_code
        kind, _ = defined_metrics()[base]
        exposed = {base} if kind != "Histogram" else {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        if kind == "Counter":
            exposed = {base, base.removesuffix("_total")}  # samples carry _total, families do not
        assert exposed & registered, f"{name} ({kind}) is not registered after importing its module"
