"""``crowdsound security apply``: a principal per role, its ACLs, and its client properties file.

For each role of :mod:`infra.acls` it makes the cluster match, idempotently, and reports what
changed:

- a SCRAM-SHA-512 user ``<prefix><role>`` (AlterUserScramCredentials). Its password is random,
  made once and kept in the role's properties file; a user that exists and whose file is there
  is left alone (re-setting it would log out every client using it);
- the role's ACLs (CreateAcls), and the removal of ACLs of that principal the catalogue no
  longer grants (DeleteAcls), so the catalogue stays the truth;
- ``<out>/<role>.properties`` (0600) in librdkafka's names — ``bootstrap.servers``,
  ``security.protocol``, ``sasl.mechanism``, ``sasl.username``, ``sasl.password``,
  ``ssl.ca.location`` — usable as it is by confluent-kafka, ``kcat -F`` and every crowdsound
  command through ``KAFKA_CONFIG_FILE``.

It runs as an admin: the settings' own credentials when they have any (``KAFKA_CONFIG_FILE``
or ``KAFKA_SECURITY_PROTOCOL``), else the local secure broker's ``admin.properties``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from infra.acls import ROLES, Binding, Role, bindings, principal_name
from infra.errors import CrowdsoundError
from infra.kafka_security import read_properties_file
from infra.settings import Settings
from infra.tls import write_private

__all__ = ["RoleChange", "admin_settings", "apply_security", "role_properties"]

_TIMEOUT_S = 30.0
_SCRAM_ITERATIONS = 8192
_KINDS = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "transactional_id": ResourceType.TRANSACTIONAL_ID}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}


@dataclass(frozen=True)
class RoleChange:
    """What ``apply`` did for one role."""

    role: str
    principal: str
    user: str  # "created", "password set" or "unchanged"
    added: int
    removed: int
    properties: Path
    wrote: bool

    @property
    def changed(self) -> bool:
        return self.user != "unchanged" or self.added > 0 or self.removed > 0 or self.wrote

    def line(self) -> str:
        if not self.changed:
            return f"unchanged {self.role:<12} {self.principal}"
        parts = [] if self.user == "unchanged" else [f"user {self.user}"]
        parts += [f"+{self.added} ACLs"] if self.added else []
        parts += [f"-{self.removed} ACLs"] if self.removed else []
        parts += [f"wrote {self.properties}"] if self.wrote else []
        return f"changed   {self.role:<12} {self.principal}: {', '.join(parts)}"


def admin_settings(settings: Settings) -> Settings:
    """The settings to administer the cluster with: the given ones when they carry credentials,
    else the local secure broker's admin (``<state>/security/admin.properties``).

    Raises
    ------
    CrowdsoundError
        When there are no credentials to use.
    """
    if settings.config_file is not None or settings.security_protocol != "PLAINTEXT":
        return settings
    from infra.broker import admin_properties_path, default_security_dir

    path = admin_properties_path(default_security_dir(settings))
    if not path.is_file():
        raise CrowdsoundError("no admin credentials: start the local secure broker (`crowdsound broker up --secure`) "
                              "or set KAFKA_CONFIG_FILE to an admin's properties file")
    return settings.with_client_file(path)


def role_properties(*, bootstrap: str, username: str, password: str, ca_location: str | None) -> dict[str, str]:
    """A role's client properties, in librdkafka's names."""
    properties = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                  "sasl.username": username, "sasl.password": password}
    if ca_location:
        properties["ssl.ca.location"] = ca_location
    return properties


def _render(role: Role, properties: dict[str, str]) -> bytes:
    lines = [f"# crowdsound role {role.name}: {role.used_by}",
             "# use it with KAFKA_CONFIG_FILE={this file} or kcat -F {this file}; keep it secret"]
    return ("\n".join(lines + [f"{key}={value}" for key, value in properties.items()]) + "\n").encode()


def _acl(binding: Binding) -> AclBinding:
    return AclBinding(_KINDS[binding.kind], binding.name, _PATTERNS[binding.pattern], binding.principal, "*",
                      AclOperation[binding.operation], AclPermissionType.ALLOW)


def _as_binding(acl: AclBinding) -> Binding | None:
    kinds = {v: k for k, v in _KINDS.items()}
    patterns = {v: k for k, v in _PATTERNS.items()}
    if (acl.restype not in kinds or acl.resource_pattern_type not in patterns
            or acl.permission_type != AclPermissionType.ALLOW or acl.host != "*"):
        return None
    return Binding(kinds[acl.restype], acl.name, patterns[acl.resource_pattern_type], acl.principal,
                   acl.operation.name)  # type: ignore[arg-type]


def _result(futures, what: str) -> None:
    for future in (futures.values() if isinstance(futures, dict) else futures):
        try:
            future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            raise CrowdsoundError(f"{what} failed: {exc.args[0].str() if exc.args else exc}") from None


def _existing_scram_users(admin: AdminClient, users: list[str]) -> set[str]:
    found: set[str] = set()
    for user, future in admin.describe_user_scram_credentials(users).items():
        try:
            description = future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args and exc.args[0].name() == "RESOURCE_NOT_FOUND":
                continue
            raise CrowdsoundError(f"describing user {user} failed: {exc.args[0].str() if exc.args else exc}") from None
        if any(info.mechanism == ScramMechanism.SCRAM_SHA_512 for info in description.scram_credential_infos):
            found.add(user)
    return found


def apply_security(admin: AdminClient, settings: Settings, out_dir: Path, *, roles: tuple[Role, ...] = ROLES,
                   bootstrap: str | None = None, dry_run: bool = False) -> list[RoleChange]:
    """Make the cluster's users and ACLs match the roles; write each role's properties file.

    ``settings`` are the admin's (their bootstrap and CA go into the files unless
    ``bootstrap`` says otherwise); names get ``settings.topic_prefix``.

    Raises
    ------
    CrowdsoundError
        The cluster refused a change (not an admin?) or cannot be reached.
    """
    prefix = settings.topic_prefix
    users = [principal_name(r.name, prefix) for r in roles]
    existing_users = _existing_scram_users(admin, users)
    try:
        current_acls = admin.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY,
        )).result(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise CrowdsoundError(f"listing ACLs failed: {exc.args[0].str() if exc.args else exc}") from None
    ca = str(Path(settings.ssl_ca_location).resolve()) if settings.ssl_ca_location else None
    changes: list[RoleChange] = []
    upserts: list[UserScramCredentialUpsertion] = []
    to_add: list[AclBinding] = []
    to_remove: list[AclBindingFilter] = []
    for the_role, user in zip(roles, users, strict=True):
        path = out_dir / f"{the_role.name}.properties"
        known = read_properties_file(path) if path.is_file() else {}
        password = known.get("sasl.password") if known.get("sasl.username") == user else None
        if user in existing_users and password:
            status = "unchanged"
        else:
            status = "created" if user not in existing_users else "password set"
            password = password or secrets.token_urlsafe(24)
            upserts.append(UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS), password.encode()))
        wanted = set(bindings(the_role, prefix))
        have = {b for acl in current_acls if (b := _as_binding(acl)) is not None and b.principal == f"User:{user}"}
        have_any = {acl for acl in current_acls if acl.principal == f"User:{user}"}
        extra = [acl for acl in have_any if _as_binding(acl) not in wanted]
        to_add += [_acl(b) for b in sorted(wanted - have)]
        to_remove += [AclBindingFilter(acl.restype, acl.name, acl.resource_pattern_type, acl.principal, acl.host,
                                       acl.operation, acl.permission_type) for acl in extra]
        content = _render(the_role, role_properties(bootstrap=bootstrap or settings.bootstrap_servers, username=user,
                                                    password=password, ca_location=ca))
        wrote = not path.is_file() or path.read_bytes() != content
        if wrote and not dry_run:
            out_dir.mkdir(parents=True, exist_ok=True)
            out_dir.chmod(0o700)
            write_private(path, content)
        changes.append(RoleChange(the_role.name, user, status, len(wanted - have), len(extra), path, wrote))
    if not dry_run:
        if upserts:
            _result(admin.alter_user_scram_credentials(upserts), "setting SCRAM credentials")
        if to_add:
            _result(admin.create_acls(to_add), "creating ACLs")
        if to_remove:
            _result(admin.delete_acls(to_remove), "removing ACLs")
        # Both reach the brokers through the metadata log a moment later: wait, so that a client
        # started right after `apply` is not refused.
        _wait_until_served(admin, {b for r in roles for b in bindings(r, prefix)},
                           [(u.user, u.password.decode()) for u in upserts], settings)
    return changes


def _wait_until_served(admin: AdminClient, wanted: set[Binding], logins: list[tuple[str, str]],
                       settings: Settings, timeout_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        current = admin.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY,
        )).result(timeout=_TIMEOUT_S)
        if wanted <= {b for acl in current if (b := _as_binding(acl)) is not None}:
            break
        if time.monotonic() > deadline:
            raise CrowdsoundError(f"the ACLs were created but the broker does not serve them after {timeout_s:.0f} s")
        time.sleep(0.2)
    for user, password in logins:
        login = role_properties(bootstrap=settings.bootstrap_servers, username=user, password=password,
                                ca_location=settings.ssl_ca_location)
        probe = AdminClient({**login, "error_cb": lambda error: None, "log_level": 0})
        while True:
            try:
                probe.list_topics(timeout=2)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise CrowdsoundError(f"user {user} was created but cannot log in after {timeout_s:.0f} s") \
                        from None
