"""Without Redis the bots refuse to start; only `parley chat` may keep history in memory.

With neither REDIS_URL nor REDIS_SENTINELS nor a redis-server on PATH, `parley telegram` and
`parley slack` stop with one line naming what to set (exit 2) instead of silently keeping every
history in one process's memory. `parley chat` still runs, and says that history will be lost.
The processes get a PATH holding no redis-server; in-process, ``open_redis`` is handed a
``which`` that finds nothing (no global is patched). REDIS_SENTINELS, the other way to name a
Redis, is checked at start too: a malformed list, or one beside REDIS_URL, is refused; so is
REDIS_CLUSTER without a node to start from or pointed at a Redis that is not a Cluster.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from pathlib import Path

import pytest

from bots import doctor
from bots.runtime import open_redis, open_runtime
from core.access import AccessControl, AccessMode
from core.admins import Admins
from core.errors import ConfigError
from core.settings import CoreSettings, load_settings
from core.store.keys import KeySpace
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer, free_port
from tests.support.cluster import RedisClusterSet
from tests.support.processes import clean_environment, fleet, start_bot

NO_REDIS = (
    "parley: no Redis: set REDIS_URL to a shared Redis (or install redis-server for a private "
    "one); the bots cannot run on in-process memory"
)
IN_MEMORY = "history is kept in memory only and is lost when Parley stops"
# Shaped like real credentials; the bots must stop before using them.
PLATFORM_ENV = {
    "telegram": {"TELEGRAM_BOT_TOKEN": "7012345678:AAHf3x9Kq2LmNpQrStUvWxYz0123456789A"},
    "slack": {
        "SLACK_BOT_TOKEN": "xoxb-2718281828-3141592653-Zq8Rt5Uv2Wx9Ya6Bc3De0Fg1",
        "SLACK_SIGNING_SECRET": "f3a1c9e7b5d2a8c4e6f0b1d3a5c7e9f2",
        "SLACK_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
    },
}


def nothing_installed(_: str) -> str | None:
    """A PATH without redis-server."""
    return None


def no_redis_env(tmp_path: Path) -> dict[str, str]:
    """No Redis configured, and a PATH (an empty directory) where no redis-server is found."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}


async def test_open_redis_refuses_process_memory_by_default(tmp_path: Path) -> None:
    settings = CoreSettings(_env_file=None, data_dir=str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        async with open_redis(settings, which=nothing_installed):
            pass
    assert f"parley: {raised.value}" == NO_REDIS


async def test_open_redis_allows_process_memory_when_asked_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CoreSettings(_env_file=None, data_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        async with open_redis(settings, allow_memory=True, which=nothing_installed) as (
            client,
            description,
        ):
            assert await client.set("k", "v")
    assert description == "in-process memory (not persistent)"
    assert IN_MEMORY in caplog.text


@pytest.mark.parametrize("platform", ["telegram", "slack"])
async def test_bots_without_redis_stop_with_one_line(platform: str, tmp_path: Path) -> None:
    env = {**no_redis_env(tmp_path), **PLATFORM_ENV[platform]}
    process = await start_bot(platform, env, log_dir=tmp_path / "logs", name=platform)
    async with fleet([process]):
        code = await asyncio.wait_for(process.process.wait(), 60)
    lines = [line for line in process.log().splitlines() if line.strip()]
    assert (code, lines) == (2, [NO_REDIS])


async def test_chat_without_redis_runs_in_memory_and_says_so(
    fake_vllm: FakeVLLM, tmp_path: Path
) -> None:
    env = clean_environment({**no_redis_env(tmp_path), "LLM_BASE_URL": fake_vllm.base_url})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "chat", "--user", "ada", "--plain",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(b"My name is Ada.\n"), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["You said: My name is Ada."]
    assert IN_MEMORY in err.decode()
    assert "Traceback" not in err.decode()


# -- REDIS_SENTINELS ---------------------------------------------------------------------------


def test_sentinels_are_host_port_pairs() -> None:
    settings = CoreSettings(_env_file=None, redis_sentinels=" s1:26379, [::1]:26380 ,,10.0.0.3:1")
    assert settings.redis_sentinels == (("s1", 26379), ("::1", 26380), ("10.0.0.3", 1))
    assert settings.redis_sentinel_master == "mymaster"
    assert CoreSettings(_env_file=None, redis_sentinels="").redis_sentinels == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("s1", "is not host:port"),
        ("s1:port", "is not host:port"),
        (":26379", "is not host:port"),
        ("s1:0", "is not host:port"),
        ("s1:65536", "is not host:port"),
        ("s1:26379,s1:26379", "listed twice"),
    ],
)
def test_a_malformed_sentinel_list_stops_parley_at_start(
    value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", value)
    with pytest.raises(ConfigError, match=f"REDIS_SENTINELS: .*{problem}"):
        load_settings(CoreSettings)


def test_redis_url_and_sentinels_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379")
    with pytest.raises(ConfigError, match="set REDIS_URL or REDIS_SENTINELS, not both"):
        load_settings(CoreSettings)


async def test_unreachable_sentinels_are_one_clear_line() -> None:
    where = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    settings = CoreSettings(_env_file=None, redis_sentinels=where, redis_timeout=0.5)
    with pytest.raises(ConfigError) as raised:
        async with open_redis(settings):
            pass
    assert str(raised.value) == (
        f"cannot reach Redis: none of the sentinels {where} names a master 'mymaster'; check "
        "REDIS_SENTINELS, REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD"
    )


# -- REDIS_CLUSTER -----------------------------------------------------------------------------


def test_a_cluster_needs_a_node_to_start_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    with pytest.raises(ConfigError, match="REDIS_CLUSTER=true needs REDIS_URL naming one of"):
        load_settings(CoreSettings)


async def test_a_cluster_setting_at_a_plain_redis_is_one_clear_line(
    redis_server: RedisServer,
) -> None:
    url = f"redis://:hunter2-not-shown@127.0.0.1:{redis_server.port}"
    settings = CoreSettings(_env_file=None, redis_url=url, redis_cluster=True, redis_timeout=0.5)
    with pytest.raises(ConfigError) as raised:
        async with open_redis(settings):
            pass
    line = str(raised.value)
    assert line.startswith(
        f"cannot reach Redis at REDIS_URL: Redis Cluster via redis://***@127.0.0.1:{redis_server.port}"
    )
    assert "hunter2" not in line
    assert "\n" not in line


async def test_a_cluster_url_with_a_database_is_refused(cluster: RedisClusterSet) -> None:
    settings = CoreSettings(_env_file=None, redis_url=cluster.url + "/2", redis_cluster=True)
    with pytest.raises(ConfigError, match="REDIS_URL is not usable with REDIS_CLUSTER=true"):
        async with open_redis(settings):
            pass


async def test_access_lists_of_an_older_release_are_copied_once(cluster: RedisClusterSet) -> None:
    """Lists kept under the untagged names move to the Cluster-ready ones at the first start;
    an entry an admin removes afterwards is not brought back by the next start."""
    cluster.flush()
    settings = CoreSettings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
    keys = KeySpace()
    async with open_redis(settings) as (client, _):
        await client.sadd(keys.named("allow"), "telegram:1", "telegram:2")
        await client.sadd(keys.named("deny"), "slack:T9")
    async with open_runtime(settings) as runtime:
        access = AccessControl(runtime.redis, mode=AccessMode.ALLOWLIST, admins=Admins())
        assert await access.lists() == (["telegram:1", "telegram:2"], ["slack:T9"])
        await access.deny("telegram:2")
    async with open_runtime(settings) as runtime:
        access = AccessControl(runtime.redis, mode=AccessMode.ALLOWLIST, admins=Admins())
        assert await access.lists() == (["telegram:1"], ["slack:T9", "telegram:2"])


async def test_doctor_describes_the_cluster(cluster: RedisClusterSet) -> None:
    settings = CoreSettings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
    out = io.StringIO()
    await doctor.run(settings, out)
    assert out.getvalue().splitlines()[0] == (
        f"✓ Redis Cluster via {cluster.url}: 3 primaries, 16384 of 16384 slots served"
    )
