"""The deployment files (deploy/) validate offline, and the validator catches what it should.

The first test runs every check of tools/validate_deploy.py over this checkout: the offline
kustomize rendering of deploy/k8s and deploy/k8s-sentinel, Kubernetes schemas, NetworkPolicies,
the Compose Specification, yamllint, hadolint, systemd units and all cross-references. The others
break one thing in a copy of the files and expect the matching error, so a check that silently
stops checking fails here. The last ones smoke-test tools/measure_redis_memory.py.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.services import missing_service
from tools import measure_redis_memory as mem
from tools import validate_deploy as vd

ROOT = Path(__file__).resolve().parents[2]
Check = Callable[[vd.Deploy, vd.Report], None]


@pytest.fixture(scope="module")
def report() -> vd.Report:
    """Every check over the real files, once."""
    return vd.validate(ROOT)


def test_deploy_files_pass_every_check(report: vd.Report) -> None:
    assert not report.errors, "\n".join(str(f) for f in report.errors)


def test_every_kind_of_check_ran(report: vd.Report) -> None:
    done = "\n".join(report.checked)
    for what in (
        "kubernetes-validate",
        "Compose Specification",
        "yamllint",
        "hadolint",
        "systemd",
        "NetworkPolicies",
        "Secret sources",
        "memory limits",
    ):
        assert what in done
    assert "Kubernetes objects against the schemas of Kubernetes 1.30 and" in done
    for build in vd.K8S_BUILDS:
        assert f"{build}: " in done


def test_kubectl_renders_what_the_offline_renderer_renders(report: vd.Report) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (CI relies on the offline renderer alone)")
    done = "\n".join(report.checked)
    for build in vd.K8S_BUILDS:
        assert f"{build}: kubectl kustomize renders the same" in done


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A checkout with just what the validator reads (no real env files: only examples)."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("*.env"))
    for name in (".env.example", ".dockerignore", ".gitignore", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    """Replace text that must be there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def errors(root: Path, *checks: Check) -> str:
    """The errors of these checks over ``root``, one per line."""
    return "\n".join(str(f) for f in vd.validate(root, checks).errors)


def warnings(root: Path, *checks: Check) -> str:
    """The warnings of these checks over ``root``, one per line."""
    return "\n".join(str(f) for f in vd.validate(root, checks).warnings)


def build(root: Path, directory: str = vd.K8S_DEFAULT) -> dict[tuple[str, str], vd.Manifest]:
    """One kustomization rendered offline: (kind, name) → object."""
    return {(m.kind, m.name): m for m in vd.render(root, directory).manifests}


def named(objects: dict[tuple[str, str], vd.Manifest], kind: str, name: str) -> vd.Manifest:
    """The object of that kind whose name is `name` or was generated as `name`."""
    return next(m for (k, _), m in objects.items() if k == kind and name in (m.name, m.generated))


# --- Kubernetes: schemas, settings, wiring --------------------------------------------------


def test_unknown_kubernetes_field_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/telegram.yaml", "readinessProbe:", "readinesProbe:")
    found = errors(copy, vd.check_k8s_schemas)
    assert "Kubernetes 1.30 schema" in found
    assert "'readinesProbe' was unexpected" in found


def test_unknown_kind_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/ingress.yaml", "kind: Ingress", "kind: Ingres")
    assert "Couldn't find schema for kind Ingres" in errors(copy, vd.check_k8s_schemas)


def test_sentinel_component_objects_are_schema_checked(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/components/redis-sentinel/redis-sentinel.yaml",
        "podManagementPolicy: Parallel",
        "podManagementPolicie: Parallel",
    )
    assert "StatefulSet/redis-sentinel): Kubernetes 1.30 schema" in errors(
        copy, vd.check_k8s_schemas
    )


def test_compose_schema_violation_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "  redis:\n    image:", "  redis:\n    imag:")
    assert "Compose Specification: services.redis" in errors(copy, vd.check_compose_schema)


def test_setting_missing_from_env_example_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/configmap.yaml", "LOG_LEVEL: INFO", "LOG_LEVL: INFO")
    assert "LOG_LEVL is not a Parley setting" in errors(copy, vd.check_k8s_parley)
    edit(copy / "deploy/compose.yaml", "DATA_DIR: /var/lib/parley", "DATADIR: /var/lib/parley")
    assert "DATADIR is not a Parley setting" in errors(copy, vd.check_compose)


def test_secret_in_the_configmap_is_an_error(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/configmap.yaml",
        "  LOG_LEVEL: INFO",
        "  TELEGRAM_BOT_TOKEN: x\n  LOG_LEVEL: INFO",
    )
    found = errors(copy, vd.check_k8s_parley)
    assert "TELEGRAM_BOT_TOKEN is a secret: it belongs in a Secret" in found
    assert "take it from a Secret, not ConfigMap/parley-config" in found


def test_setting_in_two_sources_is_an_error(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/secrets/slack.env.example",
        "SLACK_BOT_TOKEN=",
        "LOG_LEVEL=\nSLACK_BOT_TOKEN=",
    )
    assert "LOG_LEVEL is set by both ConfigMap/parley-config" in errors(copy, vd.check_k8s_parley)


def test_probes_must_use_the_operations_listener(copy: Path) -> None:
    edit(copy / "deploy/k8s/slack.yaml", "path: /readyz", "path: /ready")
    found = errors(copy, vd.check_k8s_parley)
    assert "readinessProbe should GET /readyz, not '/ready'" in found
    edit(
        copy / "deploy/k8s/configmap.yaml", "METRICS_LISTEN: 0.0.0.0:9000", "METRICS_LISTEN: :9100"
    )
    found = errors(copy, vd.check_k8s_parley, vd.check_dockerfile)
    assert "containerPort 9100 (from the listen settings) is not declared" in found
    assert "livenessProbe should probe METRICS_LISTEN's port 9100" in found
    assert "EXPOSE lacks 9100 (METRICS_LISTEN)" in found


def test_shutdown_grace_fits_the_stop_timeouts(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/telegram.yaml",
        "terminationGracePeriodSeconds: 40",
        "terminationGracePeriodSeconds: 20",
    )
    assert "terminationGracePeriodSeconds 20 < SHUTDOWN_GRACE_SECONDS 20" in errors(
        copy, vd.check_k8s_parley
    )
    edit(copy / "deploy/compose.yaml", "stop_grace_period: 30s", "stop_grace_period: 10s")
    assert "stop_grace_period 10 s is shorter than the shutdown grace" in errors(
        copy, vd.check_compose
    )


def test_bots_must_run_in_webhook_and_http_mode(copy: Path) -> None:
    edit(copy / "deploy/k8s/secrets/slack.env.example", "SLACK_SIGNING_SECRET=", "SLACK_APP_TOKEN=")
    found = errors(copy, vd.check_k8s_parley)
    assert "HTTP mode needs SLACK_SIGNING_SECRET" in found
    assert "SLACK_APP_TOKEN switches Slack to Socket Mode" in found


def test_ingress_must_route_the_webhook_path(copy: Path) -> None:
    edit(copy / "deploy/k8s/ingress.yaml", "path: /telegram/webhook", "path: /telegram")
    assert "no route for /telegram/webhook" in errors(copy, vd.check_k8s_wiring)


def test_ingress_must_reach_the_right_port(copy: Path) -> None:
    edit(copy / "deploy/k8s/ingress.yaml", "name: webhook", "name: metrics")
    assert "/telegram/webhook does not reach parley telegram's port 8443" in errors(
        copy, vd.check_k8s_wiring
    )


def test_kustomization_must_list_every_manifest(copy: Path) -> None:
    edit(copy / "deploy/k8s/kustomization.yaml", "  - ingress.yaml\n", "")
    assert "ingress.yaml is not listed in resources" in errors(copy, vd.check_k8s_wiring)


def test_component_files_must_be_used(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/components/redis-sentinel/kustomization.yaml",
        "  - path: bots.yaml\n",
        "",
    )
    found = errors(copy, vd.check_k8s_wiring)
    assert "bots.yaml is neither a resource nor a patch here" in found
    assert "REDIS_URL names one Redis: with Sentinel use REDIS_SENTINELS" in found


def test_every_container_has_requests_and_a_memory_limit(copy: Path) -> None:
    edit(copy / "deploy/k8s/slack.yaml", "            limits:\n              memory: 1Gi\n", "")
    edit(
        copy / "deploy/k8s/components/redis-sentinel/redis-sentinel.yaml",
        "              cpu: 50m\n",
        "",
    )
    found = errors(copy, vd.check_k8s_resources)
    assert "(Deployment/parley-slack) container parley: no memory limit" in found
    assert "(StatefulSet/redis-sentinel) container sentinel: no cpu request" in found


# --- Kubernetes: Secrets only from git-ignored env files -----------------------------------


def test_a_committed_secret_is_an_error(copy: Path) -> None:
    (copy / "deploy/k8s/secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: parley-extra\n"
        "stringData:\n  TELEGRAM_BOT_TOKEN: CHANGE_ME\n",
        encoding="utf-8",
    )
    edit(
        copy / "deploy/k8s/kustomization.yaml",
        "  - ingress.yaml\n",
        "  - ingress.yaml\n  - secret.yaml\n",
    )
    assert "(Secret/parley-extra): a Secret in a committed file" in errors(
        copy, vd.check_k8s_parley
    )


def test_generated_secrets_must_come_from_ignored_files(copy: Path) -> None:
    edit(copy / ".gitignore", "/deploy/k8s/secrets/*.env\n", "")
    found = errors(copy, vd.check_k8s_secrets)
    for name in ("core", "telegram", "slack"):
        assert f"deploy/k8s/secrets/{name}.env is not ignored" in found


def test_examples_hold_no_values(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/secrets/slack.env.example",
        "SLACK_BOT_TOKEN=",
        "SLACK_BOT_TOKEN=xoxb-1234",
    )
    assert "slack.env.example: SLACK_BOT_TOKEN has a value: examples hold none" in errors(
        copy, vd.check_k8s_secrets
    )


def test_a_generator_without_its_example_fails_the_build(copy: Path) -> None:
    (copy / "deploy/k8s/secrets/slack.env.example").unlink()
    found = errors(copy, vd.check_k8s_parley)
    assert "deploy/k8s/kustomization.yaml: kustomize:" in found
    assert "deploy/k8s/secrets/slack.env.example does not exist" in found


def test_real_env_files_are_never_rendered_but_looked_at(copy: Path) -> None:
    real = copy / "deploy/k8s/secrets/core.env"
    real.write_text("LLM_API_KEY=the-real-key\nREDIS_PASSWORD=\n", encoding="utf-8")
    real.chmod(0o644)
    rendered = str([m.obj for m in vd.render(copy, vd.K8S_DEFAULT).manifests])
    assert base64.b64encode(b"the-real-key").decode() not in rendered
    found = warnings(copy, vd.check_k8s_secrets)
    assert "core.env: REDIS_PASSWORD is empty or a placeholder" in found
    assert "core.env: REDIS_SENTINEL_PASSWORD is missing" in found
    assert "core.env: readable by others" in found
    assert "LLM_API_KEY" not in found


def test_references_follow_the_generated_names(copy: Path) -> None:
    objects = build(copy, "deploy/k8s-sentinel")
    core = named(objects, "Secret", "parley-core")
    assert core.name.startswith("parley-core-")
    assert core.generated == "parley-core"
    assert core.obj["metadata"]["namespace"] == "parley"
    vllm = objects[("Deployment", "vllm")].obj["spec"]["template"]["spec"]["containers"][0]
    assert vllm["env"][0]["valueFrom"]["secretKeyRef"]["name"] == core.name
    sentinel = objects[("StatefulSet", "redis-sentinel")].obj
    container = sentinel["spec"]["template"]["spec"]["containers"][0]
    assert {e["valueFrom"].get("secretKeyRef", {}).get("name") for e in container["env"]} >= {
        core.name
    }
    assert sentinel["metadata"]["namespace"] == "parley"


# --- Kubernetes: Redis, vLLM, Sentinel ----------------------------------------------------------


def test_redis_must_stay_durable(copy: Path) -> None:
    edit(copy / "deploy/k8s/redis.yaml", "appendfsync everysec", "appendfsync no")
    assert "appendfsync everysec" in errors(copy, vd.check_k8s_wiring)
    edit(copy / "deploy/compose.yaml", "- volatile-lru", "- allkeys-lru")
    assert "must run with --maxmemory-policy volatile-lru" in errors(copy, vd.check_compose)


def test_redis_evicts_only_keys_with_a_ttl(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/redis.yaml",
        "maxmemory-policy volatile-lru",
        "maxmemory-policy noeviction",
    )
    assert "Redis must run with maxmemory-policy volatile-lru (has 'noeviction')" in errors(
        copy, vd.check_k8s_wiring
    )


def test_volatile_eviction_needs_history_ttls(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/configmap.yaml",
        'HISTORY_TTL_SECONDS: "2592000"',
        'HISTORY_TTL_SECONDS: "0"',
    )
    assert "volatile-* eviction needs HISTORY_TTL_SECONDS > 0" in errors(copy, vd.check_k8s_wiring)
    edit(
        copy / "deploy/compose.yaml",
        "DATA_DIR: /var/lib/parley",
        'DATA_DIR: /var/lib/parley\n    HISTORY_TTL_SECONDS: "0"',
    )
    assert "HISTORY_TTL_SECONDS must be > 0" in errors(copy, vd.check_compose)


def test_redis_needs_room_above_maxmemory(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/redis.yaml",
        "            limits:\n              memory: 3Gi",
        "            limits:\n              memory: 2Gi",
    )
    assert "memory limit 2048 MiB < 1.5 × maxmemory 1536mb" in errors(copy, vd.check_k8s_wiring)


def test_redis_needs_a_password_from_a_secret(copy: Path) -> None:
    redis = copy / "deploy/k8s/redis.yaml"
    edit(redis, '--requirepass "$REDIS_PASSWORD"', '--requirepass "$PASSWORD"')
    assert "requirepass must come from a Secret, not nothing" in errors(copy, vd.check_k8s_wiring)
    edit(redis, ' --requirepass "$PASSWORD"', "")
    assert "Redis runs without a password" in errors(copy, vd.check_k8s_wiring)


def test_redis_url_carries_the_servers_password(copy: Path) -> None:
    edit(copy / "deploy/k8s/telegram.yaml", "redis://:$(REDIS_PASSWORD)@redis", "redis://redis")
    edit(
        copy / "deploy/k8s/slack.yaml",
        "redis://:$(REDIS_PASSWORD)@redis",
        "redis://:$(LLM_API_KEY)@redis",
    )
    found = errors(copy, vd.check_k8s_wiring)
    assert (
        "(Deployment/parley-telegram) container parley: REDIS_URL must carry Redis' password"
        in found
    )
    assert "REDIS_URL's password $(LLM_API_KEY) comes from Secret/parley-core-" in found


def test_vllm_needs_the_reasoning_parser(copy: Path) -> None:
    edit(copy / "deploy/k8s/vllm.yaml", "- deepseek_r1", "- deepseek_v3")
    assert "vLLM needs --reasoning-parser deepseek_r1" in errors(copy, vd.check_k8s_wiring)


def test_vllm_needs_the_bots_api_key(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/vllm.yaml",
        "                  key: LLM_API_KEY",
        "                  key: REDIS_PASSWORD",
    )
    found = errors(copy, vd.check_k8s_wiring)
    assert "LLM_API_KEY comes from Secret/parley-core-" in found
    assert "key REDIS_PASSWORD: they must be the same Secret key" in found
    edit(
        copy / "deploy/k8s/vllm.yaml", "            - --api-key\n            - $(LLM_API_KEY)\n", ""
    )
    assert "vLLM runs without --api-key" in errors(copy, vd.check_k8s_wiring)


SENTINEL = "deploy/k8s/components/redis-sentinel"


def test_sentinel_overlay_replaces_the_single_redis() -> None:
    objects = build(ROOT, "deploy/k8s-sentinel")
    assert ("StatefulSet", "redis") not in objects
    assert ("Service", "redis") not in objects
    assert objects[("StatefulSet", "redis-node")].obj["spec"]["replicas"] == 3
    assert objects[("StatefulSet", "redis-sentinel")].obj["spec"]["replicas"] == 3
    config = vd._data(objects[("ConfigMap", "parley-config")])
    assert config["REDIS_SENTINEL_MASTER"] == "parley"
    assert config["REDIS_SENTINELS"].count(":26379") == 3
    for bot in ("parley-telegram", "parley-slack"):
        container = objects[("Deployment", bot)].obj["spec"]["template"]["spec"]["containers"][0]
        assert not any(e["name"] == "REDIS_URL" for e in container.get("env", []))
    keys = vd._data(named(objects, "Secret", "parley-core"))
    assert {"REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "LLM_API_KEY"} <= set(keys)


def test_sentinels_must_monitor_the_bots_master(copy: Path) -> None:
    edit(
        copy / f"{SENTINEL}/redis-sentinel.yaml",
        "sentinel monitor $REDIS_SENTINEL_MASTER $primary 6379 2",
        "sentinel monitor mymaster $primary 6379 1",
    )
    found = errors(copy, vd.check_k8s_wiring)
    assert "REDIS_SENTINEL_MASTER is 'parley'; the Sentinels monitor 'mymaster'" in found
    assert "quorum 1 of 3 Sentinels is not a majority" in found


def test_sentinel_list_names_sentinel_pods(copy: Path) -> None:
    edit(
        copy / f"{SENTINEL}/bots.yaml",
        "redis-sentinel-2.redis-sentinel:26379",
        "redis-sentinel-3.redis-sentinel:26379",
    )
    assert "no Sentinel pod 'redis-sentinel-3'" in errors(copy, vd.check_k8s_wiring)


def test_sentinel_passwords_come_from_the_secret(copy: Path) -> None:
    edit(
        copy / f"{SENTINEL}/redis-sentinel.yaml",
        'requirepass "$REDIS_PASSWORD"',
        "requirepass hunter2",
    )
    edit(
        copy / f"{SENTINEL}/redis-sentinel.yaml",
        "requirepass $REDIS_SENTINEL_PASSWORD",
        "requirepass $SENTINEL_PASSWORD",
    )
    found = errors(copy, vd.check_k8s_wiring)
    assert "(StatefulSet/redis-node) container redis: requirepass is a literal password" in found
    assert "container sentinel: requirepass must come from a Secret, not nothing" in found


# --- Kubernetes: NetworkPolicies ------------------------------------------------------------

POLICIES = "deploy/k8s/networkpolicy.yaml"


def test_default_deny_is_required(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "  podSelector: {}\n  policyTypes: [Ingress]\n",
        "  podSelector: {}\n  policyTypes: [Egress]\n",
    )
    found = errors(copy, vd.check_k8s_network)
    assert "no default-deny ingress policy" in found


def test_redis_only_from_the_bots(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "  ingress:\n    - from:\n",
        "  ingress:\n    - from:\n        - namespaceSelector: {}\n",
    )
    found = errors(copy, vd.check_k8s_network)
    assert "a pod of another namespace can reach StatefulSet/redis on port 6379" in found
    assert "Deployment/vllm can reach StatefulSet/redis on port 6379 (only the bots may)" in found
    assert "can reach StatefulSet/redis-node on port 6379" in found  # the Sentinel overlay too


def test_policy_selectors_must_select_pods(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "      app.kubernetes.io/name: vllm\n  policyTypes",
        "      app.kubernetes.io/name: vlm\n  policyTypes",
    )
    found = errors(copy, vd.check_k8s_network)
    assert "(NetworkPolicy/vllm-from-bots): podSelector" in found
    assert "matches no pods" in found
    assert "Deployment/parley-telegram cannot reach Deployment/vllm on port 8000" in found


def test_policy_ports_must_exist(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "        - port: 6379\n          protocol: TCP\n---",
        "        - port: 6380\n          protocol: TCP\n---",
    )
    found = errors(copy, vd.check_k8s_network)
    assert "(NetworkPolicy/redis-from-bots): port 6380 is not a port of its pods" in found
    assert "Deployment/parley-slack cannot reach StatefulSet/redis on port 6379" in found


def test_webhook_only_from_the_ingress_controller(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "kubernetes.io/metadata.name: ingress-nginx",
        "kubernetes.io/metadata.name: ingress",
    )
    found = errors(copy, vd.check_k8s_network)
    controller = "the ingress controller (ingress-nginx)"
    assert f"{controller} cannot reach Deployment/parley-telegram on port 8443" in found


def test_ops_port_only_from_monitoring(copy: Path) -> None:
    edit(
        copy / POLICIES,
        "        - namespaceSelector:\n            matchLabels:\n"
        "              kubernetes.io/metadata.name: monitoring\n",
        "        - namespaceSelector: {}\n",
    )
    found = errors(copy, vd.check_k8s_network)
    assert "a pod of another namespace can reach Deployment/parley-slack on port 9000" in found
    assert (
        "the ingress controller (ingress-nginx) can reach Deployment/parley-telegram on port 9000"
        in found
    )


def test_bots_egress_is_limited(copy: Path) -> None:
    edit(copy / POLICIES, "              - 10.0.0.0/8\n", "")
    edit(copy / POLICIES, "        - port: 53\n          protocol: UDP\n", "")
    found = errors(copy, vd.check_k8s_network)
    assert "can reach a private address (10.96.0.10) on port 443" in found
    assert "cannot reach the cluster DNS (kube-system/kube-dns) on 53/UDP" in found


def test_sentinels_reachable_by_the_bots(copy: Path) -> None:
    edit(
        copy / f"{SENTINEL}/networkpolicy.yaml",
        "        - port: 26379\n          protocol: TCP\n---",
        "        - port: 26380\n          protocol: TCP\n---",
    )
    found = errors(copy, vd.check_k8s_network)
    assert (
        "Deployment/parley-telegram cannot reach StatefulSet/redis-sentinel on port 26379" in found
    )


def test_selector_semantics() -> None:
    labels = {"app.kubernetes.io/name": "parley", "app.kubernetes.io/component": "slack"}
    bots = {
        "matchLabels": {"app.kubernetes.io/name": "parley"},
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": ["telegram", "slack"],
            }
        ],
    }
    assert vd.selector_matches(bots, labels)
    assert not vd.selector_matches(bots, {**labels, "app.kubernetes.io/component": "worker"})
    assert vd.selector_matches({}, {})
    assert not vd.selector_matches({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, {})


# --- The offline kustomize renderer -------------------------------------------------------------


def test_generated_secret_names_hash_like_kustomize() -> None:
    # Hashes printed by kubectl kustomize (kustomize v5.5.0) for these generated Secrets.
    one = {"type": "Opaque", "data": {"A": base64.b64encode(b"abc").decode()}}
    assert vd.kustomize_hash(one) == "6b892gkb27"
    two = {"type": "Opaque", "data": {"LLM_API_KEY": "YWJj", "REDIS_PASSWORD": ""}}
    assert vd.kustomize_hash(two) == "9gbmddtb2d"


def test_strategic_merge_patches() -> None:
    base = {
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "X", "value": "1"}], "image": "i"},
                {"name": "b"},
            ],
            "drop": 1,
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}],
            "drop": None,
            "add": [1],
        }
    }
    assert vd.strategic_merge(base, patch) == {
        "spec": {"containers": [{"name": "a", "env": [], "image": "i"}, {"name": "b"}], "add": [1]}
    }
    assert base["spec"]["drop"] == 1  # the base is not modified


def _kustomization(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(text, encoding="utf-8")


def test_renderer_refuses_what_kustomize_refuses(tmp_path: Path) -> None:
    _kustomization(tmp_path / "base", "resources:\n  - overlay\n")
    _kustomization(tmp_path / "base/overlay", "resources:\n  - ..\n")
    with pytest.raises(vd.KustomizeError, match="cycle"):
        vd.Kustomizer(tmp_path).build(tmp_path / "base")
    (tmp_path / "outside.env").write_text("A=1\n", encoding="utf-8")
    _kustomization(tmp_path / "gen", "secretGenerator:\n  - name: s\n    envs: [../outside.env]\n")
    with pytest.raises(vd.KustomizeError, match="outside the kustomization's directory"):
        vd.Kustomizer(tmp_path).build(tmp_path / "gen")
    _kustomization(tmp_path / "other", "replicas:\n  - name: x\n    count: 2\n")
    with pytest.raises(vd.KustomizeError, match="`replicas` is not supported"):
        vd.Kustomizer(tmp_path).build(tmp_path / "other")


def test_env_files_read_like_kustomize(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("# comment\n\n  A=1=2\nB=\n", encoding="utf-8")
    assert vd.read_env_file(path) == {"A": "1=2", "B": ""}
    path.write_text("FROM_THE_ENVIRONMENT\n", encoding="utf-8")
    with pytest.raises(vd.KustomizeError, match="has no '='"):
        vd.read_env_file(path)


def test_sizes_and_ignores() -> None:
    assert vd.k8s_bytes("3Gi") == 3 * 2**30
    assert vd.k8s_bytes("512M") == 512 * 10**6
    assert vd.docker_bytes("2g") == 2 * 2**30
    assert vd.redis_bytes("1gb") == 2**30
    assert vd.redis_bytes("1536mb") == 1536 * 2**20
    assert vd.redis_bytes("1g") == 10**9
    assert vd.k8s_bytes("lots") is None
    assert vd.gitignored(ROOT, "deploy/k8s/secrets/core.env")
    assert vd.gitignored(ROOT, "deploy/.env")
    assert not vd.gitignored(ROOT, "deploy/k8s/secrets/core.env.example")
    assert not vd.gitignored(ROOT, "deploy/.env.example")


# --- Compose ------------------------------------------------------------------------------------


def test_compose_env_file_is_the_repository_env(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "env_file: ../.env", "env_file: .env")
    assert "env_file must be ../.env" in errors(copy, vd.check_compose)


def test_compose_health_check_must_use_metrics_port(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "127.0.0.1:9000/healthz", "127.0.0.1:9000/health")
    assert "the healthcheck should GET /healthz on port 9000" in errors(copy, vd.check_compose)


def test_compose_services_have_memory_limits(copy: Path) -> None:
    edit(
        copy / "deploy/compose.yaml",
        "    deploy:\n      resources:\n        limits:\n          memory: 2g\n",
        "",
    )
    found = errors(copy, vd.check_compose)
    assert "service redis: no memory limit" in found
    assert "no memory limit for Redis" in found


def test_compose_redis_needs_room_above_maxmemory(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "          memory: 2g\n", "          memory: 1g\n")
    assert "memory limit 1024 MiB < 1.5 × maxmemory 1gb" in errors(copy, vd.check_compose)


REDIS_PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD in deploy/.env}"


def test_compose_redis_needs_a_password_from_deploy_env(copy: Path) -> None:
    edit(
        copy / "deploy/compose.yaml",
        f"      - --requirepass\n      - {REDIS_PASSWORD}",
        "      - --requirepass\n      - hunter2",
    )
    assert "needs --requirepass ${VAR} (from deploy/.env)" in errors(copy, vd.check_compose)


def test_compose_bots_use_the_servers_secrets(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", f"redis://:{REDIS_PASSWORD}@redis", "redis://redis")
    edit(
        copy / "deploy/compose.yaml",
        "LLM_API_KEY: ${LLM_API_KEY:?set LLM_API_KEY in deploy/.env}",
        "LLM_API_KEY: ${OTHER_KEY}",
    )
    found = errors(copy, vd.check_compose)
    assert "REDIS_URL must carry Redis' password: redis://:${REDIS_PASSWORD}@…" in found
    assert "LLM_API_KEY must be vLLM's --api-key: ${LLM_API_KEY}" in found
    assert "OTHER_KEY is missing (deploy/compose.yaml uses ${OTHER_KEY})" in found


def test_compose_secrets_are_never_literals(copy: Path) -> None:
    edit(
        copy / "deploy/compose.yaml",
        "LLM_API_KEY: ${LLM_API_KEY:?set LLM_API_KEY in deploy/.env}",
        "LLM_API_KEY: sk-1234",
    )
    assert "LLM_API_KEY is a secret: ${…} from deploy/.env, not a literal" in errors(
        copy, vd.check_compose
    )


def test_compose_vllm_needs_the_api_key(copy: Path) -> None:
    edit(
        copy / "deploy/compose.yaml",
        "      - --enforce-eager\n      - --api-key\n",
        "      - --enforce-eager\n      - --api-kee\n",
    )
    assert "service vllm-cpu: --api-key ${VAR} (from deploy/.env) is missing" in errors(
        copy, vd.check_compose
    )


def test_compose_secrets_file_documents_every_variable(copy: Path) -> None:
    edit(copy / "deploy/.env.example", "LLM_API_KEY=\n", "")
    assert "LLM_API_KEY is missing (deploy/compose.yaml uses ${LLM_API_KEY})" in errors(
        copy, vd.check_compose
    )
    edit(copy / ".gitignore", ".env\n", "")
    assert "deploy/.env is not ignored" in errors(copy, vd.check_compose)


# --- Dockerfile, systemd, settings ---------------------------------------------------------------


def test_duplicate_yaml_keys_are_errors(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/configmap.yaml", "  LOG_LEVEL: INFO", "  LOG_LEVEL: INFO\n  LOG_LEVEL: X"
    )
    assert 'duplication of key "LOG_LEVEL"' in errors(copy, vd.check_yamllint)


def test_dockerfile_must_run_parley_as_non_root(copy: Path) -> None:
    edit(copy / "deploy/Dockerfile", "USER 10001:10001", "USER root")
    edit(copy / "deploy/Dockerfile", 'ENTRYPOINT ["parley"]', "ENTRYPOINT parley")
    found = errors(copy, vd.check_dockerfile)
    assert "must switch to a non-root USER" in found
    assert 'ENTRYPOINT must be ["parley"]' in found


def test_dockerignore_must_exclude_secrets(copy: Path) -> None:
    edit(copy / ".dockerignore", "\n.env\n", "\n")
    edit(copy / ".dockerignore", "\ndeploy/k8s/secrets\n", "\n")
    found = errors(copy, vd.check_dockerfile)
    assert ".dockerignore: does not exclude .env" in found
    assert ".dockerignore: does not exclude deploy/k8s/secrets" in found


def test_hadolint_findings_are_errors(copy: Path) -> None:
    edit(copy / "deploy/Dockerfile", "WORKDIR /src\n", "RUN cd /src\n")
    assert "hadolint DL3003" in errors(copy, vd.check_hadolint)


def test_systemd_units_are_checked(copy: Path) -> None:
    unit = copy / "deploy/systemd/parley-slack.service"
    edit(
        unit, "ExecStart=/opt/parley/venv/bin/parley slack", "ExecStart=/opt/parley/venv/bin/parley"
    )
    assert "ExecStart must run `parley slack`" in errors(copy, vd.check_systemd)
    if shutil.which("systemd-analyze") is not None:
        edit(unit, "[Service]\n", "[Service]\nRestartt=always\n")
        assert "Unknown key" in errors(copy, vd.check_systemd)


def test_env_example_secrets_are_recognised() -> None:
    settings = vd.read_env_example(ROOT / ".env.example")
    secret = {name for name, s in settings.items() if s.secret}
    assert {"TELEGRAM_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL", "LLM_API_KEY"} <= secret
    assert not {"LLM_MAX_TOKENS", "LOG_LEVEL", "TELEGRAM_WEBHOOK_URL"} & secret


def test_dockerfile_parser_joins_continuations() -> None:
    parsed = vd.parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM x AS b\nRUN --mount=type=cache,target=/c a \\\n"
        '  # a comment\n  && b\nENTRYPOINT ["parley"]\n'
    )
    assert [i.keyword for i in parsed] == ["FROM", "RUN", "ENTRYPOINT"]
    assert parsed[1].flags == ("--mount=type=cache,target=/c",)
    assert parsed[1].rest == "a  && b"
    assert parsed[2].exec_form == ("parley",)


# --- tools/measure_redis_memory.py ------------------------------------------------------------


def _measure(scenarios: Iterable[mem.Scenario]) -> list[mem.Result]:
    """Run the tool on its own redis-server, in a thread with its own event loop (this module's
    tests stay synchronous, so the suite's shared event loop is never touched)."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        missing_service("redis-server")
    with ThreadPoolExecutor(max_workers=1) as pool:
        results, facts = pool.submit(asyncio.run, mem.measure(list(scenarios))).result(60)
    assert facts["redis_version"] != "?"
    return results


def test_memory_tool_measures_through_the_store() -> None:
    short, longer = _measure([mem.Scenario(users=20, turns=1), mem.Scenario(users=20, turns=4)])
    assert (short.messages_per_user, short.sample_length) == (2, 2)
    assert (longer.messages_per_user, longer.sample_length) == (8, 8)
    for result in (short, longer):
        assert 0 < result.payload_bytes < result.used_memory_bytes
        assert result.per_1000_users_mib > 0
    assert longer.used_memory_bytes > short.used_memory_bytes


def test_memory_tool_respects_the_history_cap() -> None:
    (capped,) = _measure([mem.Scenario(users=10, turns=5, max_messages=4)])
    assert (capped.messages_per_user, capped.sample_length) == (4, 4)


def test_memory_tool_table_lists_every_scenario() -> None:
    result = mem.Result(
        users=1000,
        turns=5,
        messages_per_user=10,
        payload_bytes=10 * 2**20,
        used_memory_bytes=11 * 2**20,
        used_memory_dataset_bytes=11 * 2**20,
        encoding="listpack",
        sample_length=10,
        seconds=1.0,
    )
    facts = {
        "redis_version": "7.4.0",
        "mem_allocator": "jemalloc",
        "python": "3.11",
        "machine": "x86_64",
    }
    text = mem.table([result], facts)
    assert "| 5 | 10 | 10.0 MiB | 11.0 MiB | 105 B | listpack |" in text
