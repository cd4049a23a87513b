"""The deployment files (deploy/) validate offline, and the validator catches what it should.

The first test runs every check of tools/validate_deploy.py over this checkout: Kubernetes
schemas, the Compose Specification, yamllint, hadolint, systemd units and all cross-references.
The others break one thing in a copy of the files and expect the matching error, so a check
that silently stops checking fails here. The last ones smoke-test tools/measure_redis_memory.py.
"""

from __future__ import annotations

import asyncio
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
    for what in ("kubernetes-validate", "Compose Specification", "yamllint", "hadolint", "systemd"):
        assert what in done
    assert "Kubernetes objects against the schemas of Kubernetes 1.30 and" in done


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A checkout with just what the validator reads."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    for name in (".env.example", ".dockerignore", "pyproject.toml"):
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


def test_unknown_kubernetes_field_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/telegram.yaml", "readinessProbe:", "readinesProbe:")
    found = errors(copy, vd.check_k8s_schemas)
    assert "Kubernetes 1.30 schema" in found
    assert "'readinesProbe' was unexpected" in found


def test_unknown_kind_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/ingress.yaml", "kind: Ingress", "kind: Ingres")
    assert "Couldn't find schema for kind Ingres" in errors(copy, vd.check_k8s_schemas)


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
        "  LLM_API_KEY: x\n  LOG_LEVEL: INFO",
    )
    found = errors(copy, vd.check_k8s_parley)
    assert "LLM_API_KEY is a secret: it belongs in a Secret" in found
    assert "take it from a Secret, not ConfigMap/parley-config" in found


def test_real_looking_secret_value_is_an_error(copy: Path) -> None:
    edit(copy / "deploy/k8s/secret.yaml", "CHANGE_ME_SLACK_BOT_TOKEN", "xoxb-1234-5678")
    assert "SLACK_BOT_TOKEN is not a CHANGE_ME placeholder" in errors(copy, vd.check_k8s_parley)


def test_setting_in_two_sources_is_an_error(copy: Path) -> None:
    edit(
        copy / "deploy/k8s/secret.yaml",
        "  SLACK_BOT_TOKEN:",
        "  LOG_LEVEL: CHANGE_ME\n  SLACK_BOT_TOKEN:",
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
    edit(copy / "deploy/k8s/secret.yaml", "  SLACK_SIGNING_SECRET:", "  SLACK_APP_TOKEN:")
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


def test_redis_must_stay_durable(copy: Path) -> None:
    edit(copy / "deploy/k8s/redis.yaml", "appendfsync everysec", "appendfsync no")
    assert "appendfsync everysec" in errors(copy, vd.check_k8s_wiring)
    edit(copy / "deploy/compose.yaml", "- noeviction", "- allkeys-lru")
    assert "must run with --maxmemory-policy noeviction" in errors(copy, vd.check_compose)


def test_vllm_needs_the_reasoning_parser(copy: Path) -> None:
    edit(copy / "deploy/k8s/vllm.yaml", "- deepseek_r1", "- deepseek_v3")
    assert "vLLM needs --reasoning-parser deepseek_r1" in errors(copy, vd.check_k8s_wiring)


def test_compose_env_file_is_the_repository_env(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "env_file: ../.env", "env_file: .env")
    assert "env_file must be ../.env" in errors(copy, vd.check_compose)


def test_compose_health_check_must_use_metrics_port(copy: Path) -> None:
    edit(copy / "deploy/compose.yaml", "127.0.0.1:9000/healthz", "127.0.0.1:9000/health")
    assert "the healthcheck should GET /healthz on port 9000" in errors(copy, vd.check_compose)


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
    assert ".dockerignore: does not exclude .env" in errors(copy, vd.check_dockerfile)


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
