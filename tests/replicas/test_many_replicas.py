"""Many replicas, one Redis — proven, on a single redis-server and on a three-primary Cluster.

Three `parley telegram` processes in webhook mode (and three `parley slack` processes in HTTP
mode) sit behind a round-robin forwarder on loopback, with the fake Bot API / fake Slack Web API
in this process, a vLLM-compatible fake streaming at a scaled realistic pace in its own process,
and one real Redis. The driver plays hundreds of users at once: some send several messages at
once, and a share of the updates/events is delivered twice at the same moment to two different
replicas. Afterwards the fakes' records and Redis must show:

* every question answered exactly once (0 duplicate replies, 0 lost turns),
* every stored history whole turns, alternating user/assistant, each answer its own question's,
* pacing per chat (Telegram) and per workspace (Slack) respected across replicas: no 429 at
  normal pacing, and the most writes in any window as computed from the fake's records,
* a replica killed with SIGKILL mid-reply leaves its conversations locked no longer than the
  lease: the next message there is answered within lease + slack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.conversation import ConversationKey
from core.phrases import Phrases
from core.store.client import RedisClient
from tests.chaos.invariants import (
    KEYS,
    HistoryReport,
    check_history,
    echo,
    load_history,
    lock_keys,
    max_in_window,
    min_gap,
    questions,
)
from tests.fakes.fake_slack import FakeSlack, SlackSender
from tests.fakes.fake_telegram import Chat, FakeTelegram, RateRules, User
from tests.integration.slack.conftest import SIGNING_SECRET
from tests.integration.telegram.conftest import SCALE
from tests.replicas.conftest import SharedRedis
from tests.services import free_port
from tests.support.forwarder import PIN_HEADER, RoundRobinForwarder
from tests.support.processes import BotProcess, fleet, start_bot, stop_all
from tests.support.timing import patient

REPLICAS = 3
LEASE = 3.0  # LOCK_LEASE_SECONDS: small, so a crashed replica's locks expire quickly
GRACE_AFTER_LEASE = patient(1.0)  # scheduling slack on a loaded 2-core machine (3 s by default)
WEBHOOK_SECRET = "replicas-webhook-secret"
WEBHOOK_PATH = "/telegram/webhook"
WRITES = ("sendmessage", "editmessagetext")


def _core_env(redis: SharedRedis, llm_url: str) -> dict[str, str]:
    """Settings every replica shares, as an operator would put them in the environment."""
    return {
        **redis.env,
        "LLM_BASE_URL": llm_url,
        "LOCK_LEASE_SECONDS": str(LEASE),
        "QUOTA_MESSAGES_PER_MINUTE": "0",  # users here send several messages at once
        "SHUTDOWN_GRACE_SECONDS": "3",
        "LOG_LEVEL": "WARNING",
    }


async def _start_fleet(
    command: str, envs: list[dict[str, str]], log_dir: Path, ports: list[int]
) -> list[BotProcess]:
    """Start the replicas at once and wait until each listens."""
    processes = [
        await start_bot(command, env, log_dir=log_dir, name=f"{command}-{i}", port=port)
        for i, (env, port) in enumerate(zip(envs, ports, strict=True))
    ]
    try:
        await asyncio.gather(*(p.wait_http("/healthz", timeout=90) for p in processes))
    except BaseException:
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
        raise
    return processes


async def _until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> float:
    """Poll ``condition`` until true; returns the seconds it took."""
    started = time.monotonic()
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def _assert_clean_logs(processes: list[BotProcess], codes: dict[str, int]) -> None:
    """No unhandled exception in any replica's log; every survivor stopped cleanly."""
    for process in processes:
        assert not process.problems(), f"{process.name}:\n{process.log()[-4000:]}"
        if not process.killed:
            assert codes[process.name] == 0, f"{process.name}:\n{process.log()[-4000:]}"


# ===================================================================================== Telegram


@dataclass
class TgQuestion:
    """One message a user sent and the update that carried it."""

    chat: Chat
    user: User
    text: str  # what the model is asked (a group mention without the @bot)
    message_id: int
    update: dict[str, Any]
    duplicated: bool


class TelegramDriver:
    """Plays users against the forwarder: updates POSTed as Telegram's webhook would."""

    def __init__(self, telegram: FakeTelegram, url: str, session: aiohttp.ClientSession) -> None:
        self.telegram = telegram
        self.url = url
        self.session = session
        self.sent: list[TgQuestion] = []
        self.statuses: Counter[int] = Counter()
        self.pairs: list[tuple[int, int]] = []  # replicas that got the two copies of an update
        self._ids = itertools.count(500_000)
        self._pins = itertools.count()
        self._gate = asyncio.Semaphore(64)

    def question(
        self, chat: Chat, user: User, text: str, *, mention: bool, duplicated: bool
    ) -> TgQuestion:
        """Record a user's message in the fake and wrap it in an update."""
        body = f"@{self.telegram.bot.username} {text}" if mention else text
        message = self.telegram.message(chat, user, body)
        update = {"update_id": next(self._ids), "message": message.to_dict()}
        asked = TgQuestion(chat, user, text, message.message_id, update, duplicated)
        self.sent.append(asked)
        return asked

    async def post(self, update: dict[str, Any], *, replica: int | None = None) -> int:
        """One webhook call through the forwarder; returns the replica that served it."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        if replica is not None:
            headers[PIN_HEADER] = str(replica)
        async with self._gate, self.session.post(self.url, json=update, headers=headers) as r:
            await r.read()
            self.statuses[r.status] += 1
            return int(r.headers.get(PIN_HEADER, "-1"))

    async def deliver(self, asked: TgQuestion) -> None:
        """Deliver once, or twice at the same moment to two different replicas."""
        if not asked.duplicated:
            await self.post(asked.update)
            return
        first = next(self._pins) % REPLICAS
        served = await asyncio.gather(
            self.post(asked.update, replica=first),
            self.post(asked.update, replica=(first + 1) % REPLICAS),
        )
        self.pairs.append((served[0], served[1]))

    async def conversation(self, batch: list[TgQuestion]) -> None:
        """A user's messages, all sent at once."""
        await asyncio.gather(*(self.deliver(q) for q in batch))

    def missing(self) -> int:
        """Answers not visible yet."""
        expected: dict[int, Counter[str]] = defaultdict(Counter)
        for asked in self.sent:
            expected[asked.chat.id][echo(asked.text)] += 1
        return sum(
            (want - Counter(self.telegram.bot_texts(chat))).total()
            for chat, want in expected.items()
        )


def _tg_envs(
    telegram: FakeTelegram, forwarder: str, ports: list[int], redis: SharedRedis, llm_url: str
) -> list[dict[str, str]]:
    """One environment per replica: same bot, same webhook URL (the forwarder), own port."""
    return [
        {
            **_core_env(redis, llm_url),
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_URL": telegram.url,
            "TELEGRAM_WEBHOOK_URL": forwarder + WEBHOOK_PATH,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            # Telegram's limits, scaled like the fake's windows.
            "TELEGRAM_CHAT_INTERVAL": str(1.0 * SCALE),
            "TELEGRAM_GROUP_MESSAGES_PER_MINUTE": str(20 / SCALE),
            "TELEGRAM_BOT_MESSAGES_PER_SECOND": str(30 / SCALE),
        }
        for port in ports
    ]


def _plan_telegram(telegram: FakeTelegram, driver: TelegramDriver) -> list[list[TgQuestion]]:
    """500 conversations: 400 private chats and 20 groups of 5 members who mention the bot."""
    rng = random.Random(7)
    batches: list[list[TgQuestion]] = []
    serial = itertools.count()
    for _ in range(400):
        user = telegram.new_user(f"P{next(serial)}")
        chat = telegram.private_chat(user)
        many = rng.choices([1, 2, 3], weights=[70, 20, 10])[0]
        batches.append(
            [
                driver.question(
                    chat, user, f"private {user.id} q{j}", mention=False,
                    duplicated=rng.random() < 0.25,
                )
                for j in range(many)
            ]
        )  # fmt: skip
    for g in range(20):
        group = telegram.new_group(f"Team {g}")
        for _ in range(5):
            user = telegram.new_user(f"G{next(serial)}")
            many = rng.choices([1, 2], weights=[70, 30])[0]
            batches.append(
                [
                    driver.question(
                        group, user, f"group {user.id} q{j}", mention=True,
                        duplicated=rng.random() < 0.25,
                    )
                    for j in range(many)
                ]
            )  # fmt: skip
    rng.shuffle(batches)
    return batches


def _telegram_pacing(telegram: FakeTelegram) -> dict[str, float]:
    """Most writes per chat (and bot-wide) in a window, computed from the fake's records.

    A slot is reserved in Redis and the request leaves when it comes, so two writes can reach
    the platform a little closer than the interval when the first was delayed on its way;
    the platforms tolerate that jitter (short bursts), never a sustained faster rate. So the
    windows checked are one interval (at most 2 writes: jitter, never a burst of 3) and ten
    intervals (at most 11: the sustained rate), 20 writes per minute in groups, and for the
    whole bot 30 per second (with the fake's jitter allowance) and 300 per ten seconds.
    """
    by_chat: dict[int, list[float]] = defaultdict(list)
    everything: list[float] = []
    for call in telegram.calls:
        if call.ok and call.method in WRITES and call.chat_id is not None:
            by_chat[call.chat_id].append(call.at)
            everything.append(call.at)
    private = [t for c, t in by_chat.items() if c > 0]
    groups = [t for c, t in by_chat.items() if c < 0]
    chat = 1.0 * SCALE  # TELEGRAM_CHAT_INTERVAL
    group = 3.0 * SCALE  # 20 per minute
    return {
        "writes": len(everything),
        "private_max_per_interval": max(max_in_window(t, chat) for t in private),
        "private_max_per_10_intervals": max(max_in_window(t, 10 * chat) for t in private),
        "private_min_gap": round(min(min_gap(t) for t in private), 3),
        "group_max_per_interval": max(max_in_window(t, group) for t in groups),
        "group_max_per_minute": max(max_in_window(t, 20 * group) for t in groups),
        "group_min_gap": round(min(min_gap(t) for t in groups), 3),
        # Telegram's fake allows its 0.05 s of jitter on this window; so does the count.
        "bot_max_per_second": max_in_window(everything, 1.0 * SCALE - 0.05),
        "bot_max_per_10_seconds": max_in_window(everything, 10.0 * SCALE),
    }


async def _check_histories(
    redis: RedisClient, asked: dict[ConversationKey, Counter[str]]
) -> HistoryReport:
    """Each conversation: whole, alternating, answers matching, every question stored once."""
    report = HistoryReport()
    for key, texts in asked.items():
        history = await load_history(redis, key)
        one = check_history(str(key), history)
        if Counter(questions(history)) != texts:
            one.problems.append(f"{key}: stored questions {questions(history)} != sent {texts}")
        report.extend(one)
    return report


async def _check_telegram_histories(redis: RedisClient, sent: list[TgQuestion]) -> HistoryReport:
    """Each conversation (chat, user): whole, alternating, answers matching, nothing lost."""
    asked: dict[ConversationKey, Counter[str]] = defaultdict(Counter)
    for q in sent:
        asked[ConversationKey("telegram", str(q.chat.id), str(q.user.id))][q.text] += 1
    return await _check_histories(redis, asked)


@pytest.mark.timeout(180)
async def test_telegram_replicas_share_one_redis(
    shared_redis: SharedRedis,
    vllm_process: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    telegram = FakeTelegram(rules=RateRules(time_scale=SCALE))
    await telegram.start()
    ports = [free_port() for _ in range(REPLICAS)]
    forwarder = RoundRobinForwarder([f"http://127.0.0.1:{p}" for p in ports])
    await forwarder.start()
    envs = _tg_envs(telegram, forwarder.url, ports, shared_redis, vllm_process)
    redis_client = shared_redis.client
    processes = await _start_fleet("telegram", envs, tmp_path / "logs", ports)
    booted = time.monotonic() - started
    codes: dict[str, int] = {}
    try:
        async with fleet(processes), aiohttp.ClientSession() as session:
            assert telegram.webhook is not None
            assert telegram.webhook.url == forwarder.url + WEBHOOK_PATH
            driver = TelegramDriver(telegram, forwarder.url + WEBHOOK_PATH, session)

            # -- phase 1: 500 conversations, several messages at once, duplicates --------------
            batches = _plan_telegram(telegram, driver)
            phase1 = time.monotonic()
            tasks = []
            for batch in batches:
                tasks.append(asyncio.create_task(driver.conversation(batch)))
                await asyncio.sleep(0.05)  # ~20 conversations start per second
            await asyncio.gather(*tasks)
            await _until(lambda: driver.missing() == 0, timeout=90, what="every answer")
            await _until(lambda: _no_locks(redis_client), timeout=LEASE * 3, what="no turn running")
            await telegram.settle(0.3)
            phase1_seconds = time.monotonic() - phase1

            conversations = {(q.chat.id, q.user.id) for q in driver.sent}
            assert len(conversations) == 500
            assert driver.statuses == Counter({200: len(driver.sent) + len(driver.pairs)})
            assert all(a != b for a, b in driver.pairs), "each copy went to another replica"
            assert len(driver.pairs) > 100
            assert sorted(forwarder.hits()) == list(range(REPLICAS))

            # What users see: exactly one answer per question, nothing else.
            for chat in {q.chat.id for q in driver.sent}:
                want = sorted(echo(q.text) for q in driver.sent if q.chat.id == chat)
                assert sorted(telegram.bot_texts(chat)) == want, chat
            # In groups each answer replies to its own question.
            by_message = {(q.chat.id, q.message_id): q.text for q in driver.sent}
            for chat in {q.chat.id for q in driver.sent if q.chat.id < 0}:
                for shown in telegram.bot_messages(chat):
                    assert shown.reply_to is not None
                    assert shown.text == echo(by_message[(chat, shown.reply_to.message_id)])

            report = await _check_telegram_histories(redis_client, driver.sent)
            assert report.problems == []
            assert report.turns == len(driver.sent)

            pacing = _telegram_pacing(telegram)
            assert telegram.flood_errors() == []
            assert telegram.errors(code=429) == []
            assert pacing["private_max_per_interval"] <= 2, pacing
            assert pacing["private_max_per_10_intervals"] <= 11, pacing
            assert pacing["group_max_per_interval"] <= 2, pacing
            assert pacing["group_max_per_minute"] <= 20, pacing
            assert pacing["bot_max_per_second"] <= 30, pacing
            assert pacing["bot_max_per_10_seconds"] <= 300, pacing

            # -- phase 2: SIGKILL a replica while it streams replies ---------------------------
            killed = await _kill_mid_reply(telegram, driver, processes, redis_client)
            codes = await stop_all([p for p in processes if not p.killed])
    finally:
        await forwarder.stop()
        await telegram.stop()
    _assert_clean_logs(processes, codes)
    print(
        f"\ntelegram replicas: boot {booted:.1f} s, phase 1 {phase1_seconds:.1f} s for "
        f"{len(driver.sent)} messages in 500 conversations ({len(driver.pairs)} delivered "
        f"twice), forwarder hits {dict(forwarder.hits())}, pacing {pacing}; "
        f"kill: {killed}; total {time.monotonic() - started:.1f} s"
    )


async def _no_locks(redis: RedisClient) -> bool:
    """No turn lease is held anywhere."""
    return not await lock_keys(redis)


async def _kill_mid_reply(
    telegram: FakeTelegram,
    driver: TelegramDriver,
    processes: list[BotProcess],
    redis: RedisClient,
) -> dict[str, float]:
    """SIGKILL replica 0 while it streams 8 replies; their next messages must get through.

    The next answers also tell each user that the killed turn was never finished.

    The questions are long, so their echoed answers stream for a few seconds; the kill comes
    once every turn holds its lease and answers are visibly half-written.
    """
    victim = processes[0]
    long_text = " ".join(f"word{i}" for i in range(300))  # ~600 tokens each way
    users = [telegram.new_user(f"K{i}") for i in range(8)]
    first = [
        driver.question(telegram.private_chat(u), u, f"{long_text} {u.id}", mention=False,
                        duplicated=False)
        for u in users
    ]  # fmt: skip
    served = await asyncio.gather(*(driver.post(q.update, replica=0) for q in first))
    assert served == [0] * len(first)
    keys = [ConversationKey("telegram", str(u.id), str(u.id)) for u in users]

    def partial(chat: int) -> bool:
        texts = telegram.bot_texts(chat)
        return bool(texts) and texts[0].startswith("You said: word")

    async def mid_reply() -> bool:
        shown = all(telegram.bot_messages(u.id) for u in users)
        held = await redis.exists(*(KEYS.lock(k) for k in keys))
        return shown and held == len(keys) and any(partial(u.id) for u in users)

    await _until(mid_reply, timeout=30, what="the victim to be mid-reply", interval=0.01)
    victim.kill()
    killed_at = time.monotonic()
    await victim.process.wait()
    ttls = [await redis.pttl(KEYS.lock(k)) for k in keys]
    assert all(0 < ttl <= LEASE * 1000 for ttl in ttls), ttls
    cut = {u.id: telegram.bot_texts(u.id)[0] for u in users}
    assert all(text != echo(q.text) for text, q in zip(cut.values(), first, strict=True))

    follow = [
        driver.question(telegram.private_chat(u), u, f"after the crash {u.id}", mention=False,
                        duplicated=False)
        for u in users
    ]  # fmt: skip
    await asyncio.gather(*(driver.post(q.update) for q in follow))  # the forwarder skips 0
    # The new answer also says the killed turn was never finished.
    after_crash = {q.chat.id: f"{echo(q.text)}\n\n{Phrases().previous_lost}" for q in follow}
    await _until(
        lambda: all(after_crash[q.chat.id] in telegram.bot_texts(q.chat.id) for q in follow),
        timeout=LEASE + GRACE_AFTER_LEASE + 10,
        what="answers after the crash",
        interval=0.02,
    )
    answered_after = time.monotonic() - killed_at
    assert answered_after <= LEASE + GRACE_AFTER_LEASE, answered_after

    async def saved() -> bool:  # a reply shows in full before its turn is saved and its lease freed
        return not await redis.exists(*(KEYS.lock(k) for k in keys))

    await _until(saved, timeout=patient(LEASE), what="the turns after the crash to end")
    for key, q in zip(keys, follow, strict=True):
        history = await load_history(redis, key)
        # The killed turn left nothing half-saved; the next one is whole.
        assert [(m.role.value, m.content) for m in history] == [
            ("user", q.text),
            ("assistant", echo(q.text)),
        ]
        # What the user sees: the reply cut off by the crash, then the new answer.
        assert telegram.bot_texts(q.chat.id) == [cut[q.user.id], after_crash[q.chat.id]]
    return {
        "lease_ttl_at_kill_max_ms": float(max(ttls)),
        "half_written_at_kill": float(sum(partial(u.id) for u in users)),
        "answered_after_kill_s": round(answered_after, 2),
    }


# ======================================================================================== Slack

SLACK_SCALE = 0.05  # Slack's windows: 50 chat.update per minute → 50 per 3 s
# The fake stamps a request when its event loop gets to it; on a loaded machine that loop
# stalls for a few hundred milliseconds now and then and bunches the stamps. The fake's
# workspace window is that much more lenient (as Telegram's fake has a jitter allowance), its
# per-channel post window allows a burst of 3 at the nominal rate (Slack tolerates bursts), and
# the windows counted below are shortened by the same amount.
MEASURE_JITTER = 0.5
# Answers long enough to be streamed with chat.update, so the workspace budget is what limits.
FILLER = " ".join(f"w{i}" for i in range(30))


@dataclass
class SlackQuestion:
    """One message a person sent and where its answer must appear."""

    channel: str
    user: str
    thread: str | None  # the thread the answer goes to (None: top level of a DM)
    text: str
    envelope: dict[str, Any]
    duplicated: bool


class SlackDriver:
    """Signed Events API requests through the forwarder."""

    def __init__(self, slack: FakeSlack, url: str) -> None:
        self.slack = slack
        self.sender = SlackSender(slack, url, SIGNING_SECRET)
        self.sent: list[SlackQuestion] = []
        self.statuses: Counter[int] = Counter()
        self.pairs: list[tuple[int, int]] = []
        self._pins = itertools.count()
        self._gate = asyncio.Semaphore(32)

    async def post(self, envelope: dict[str, Any], replica: int | None = None) -> int:
        """One signed delivery; returns the replica that served it."""
        headers = {"Content-Type": "application/json"}
        if replica is not None:
            headers[PIN_HEADER] = str(replica)
        async with self._gate:
            delivery = await self.sender.post(json.dumps(envelope).encode(), headers)
        self.statuses[delivery.status] += 1
        return -1 if replica is None else replica % REPLICAS

    async def deliver(self, envelope: dict[str, Any], *, duplicated: bool) -> None:
        """Once, or the same event_id twice at once to two different replicas."""
        if not duplicated:
            await self.post(envelope)
            return
        first = next(self._pins) % REPLICAS
        served = await asyncio.gather(
            self.post(envelope, first), self.post(envelope, (first + 1) % REPLICAS)
        )
        self.pairs.append((served[0], served[1]))

    def dm(self, channel: str, user: str, text: str, *, duplicated: bool) -> SlackQuestion:
        """A direct message."""
        event = self.slack.user_message(channel, user, text, channel_type="im")
        asked = SlackQuestion(
            channel, user, None, text, self.slack.event_callback(event), duplicated
        )
        self.sent.append(asked)
        return asked

    def mention(self, channel: str, user: str, text: str) -> tuple[SlackQuestion, dict[str, Any]]:
        """@parley in a channel: Slack sends app_mention and a message event for it."""
        event = self.slack.user_message(channel, user, f"<@{self.slack.bot_user_id}> {text}")
        asked = SlackQuestion(
            channel, user, str(event["ts"]), text,
            self.slack.event_callback(self.slack.mention(event)), False,
        )  # fmt: skip
        self.sent.append(asked)
        return asked, self.slack.event_callback(event)

    def follow_up(self, root: SlackQuestion, text: str, *, duplicated: bool) -> SlackQuestion:
        """A reply in the thread Parley answers in."""
        assert root.thread is not None
        event = self.slack.user_message(root.channel, root.user, text, thread_ts=root.thread)
        asked = SlackQuestion(
            root.channel, root.user, root.thread, text, self.slack.event_callback(event),
            duplicated,
        )  # fmt: skip
        self.sent.append(asked)
        return asked

    def answers(self, channel: str, thread: str | None) -> list[str]:
        """What the bot shows in a DM's top level or a thread."""
        return [m.visible for m in self.slack.bot_replies(channel, thread)]

    def missing(self) -> int:
        """Answers not visible yet."""
        expected: dict[tuple[str, str | None], Counter[str]] = defaultdict(Counter)
        for asked in self.sent:
            expected[(asked.channel, asked.thread)][echo(asked.text)] += 1
        return sum(
            (want - Counter(self.answers(*place))).total() for place, want in expected.items()
        )


def _slack_envs(
    slack: FakeSlack, ports: list[int], redis: SharedRedis, llm_url: str
) -> list[dict[str, str]]:
    """One environment per replica: same app, own HTTP port."""
    return [
        {
            **_core_env(redis, llm_url),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SLACK_HTTP_LISTEN": f"127.0.0.1:{port}",
            "SLACK_UPDATES_PER_MINUTE": str(50 / SLACK_SCALE),
            "SLACK_CHANNEL_INTERVAL": str(1.0 * SLACK_SCALE),
        }
        for port in ports
    ]


async def _answered(driver: SlackDriver, asked: SlackQuestion) -> None:
    """Until the answer to ``asked`` shows and nothing streams there."""
    await _until(
        lambda: echo(asked.text) in driver.answers(asked.channel, asked.thread),
        timeout=60,
        what=f"the answer to {asked.text!r}",
        interval=0.05,
    )


async def _slack_dm_conversation(
    driver: SlackDriver, n: int, many: int, rng: random.Random
) -> None:
    """A user DMs the bot ``many`` messages at once."""
    channel, user = f"D{n:07d}", f"U{n:07d}"
    batch = [
        driver.dm(channel, user, f"dm {user} q{j} {FILLER}", duplicated=rng.random() < 0.25)
        for j in range(many)
    ]
    await asyncio.gather(*(driver.deliver(q.envelope, duplicated=q.duplicated) for q in batch))


async def _slack_thread_conversation(
    driver: SlackDriver, channel: str, user: str, follow_ups: int, rng: random.Random
) -> None:
    """A mention (both events Slack sends, to two replicas), then follow-ups in the thread."""
    root, plain_message = driver.mention(channel, user, f"mention {user} in {channel}")
    first = next(driver._pins) % REPLICAS
    await asyncio.gather(
        driver.post(root.envelope, first), driver.post(plain_message, (first + 1) % REPLICAS)
    )
    await _answered(driver, root)
    batch = [
        driver.follow_up(root, f"thread {user} f{j} {FILLER}", duplicated=rng.random() < 0.25)
        for j in range(follow_ups)
    ]
    await asyncio.gather(*(driver.deliver(q.envelope, duplicated=q.duplicated) for q in batch))


def _slack_pacing(slack: FakeSlack, window: float) -> dict[str, float]:
    """Writes per workspace window and per channel, from the fake's records.

    Windows counted for all writes are shortened by MEASURE_JITTER (see there).
    """
    posts: dict[str, list[float]] = defaultdict(list)
    for call in slack.calls_to("chat.postMessage", ok=True):
        posts[str(call.args.get("channel"))].append(call.at)
    updates = [c.at for c in slack.calls_to("chat.update", ok=True)]
    everything = updates + [t for times in posts.values() for t in times]
    busy = max(everything) - min(everything)
    return {
        "updates": len(updates),
        "posts": len(everything) - len(updates),
        "workspace_max_updates_per_window": max_in_window(updates, window),
        "workspace_max_writes_per_window": max_in_window(everything, window - MEASURE_JITTER),
        "workspace_writes_per_window_sustained": round((len(everything) - 1) * window / busy, 1),
        "channel_max_posts_per_interval": max(
            max_in_window(t, 1.0 * SLACK_SCALE) for t in posts.values()
        ),
        "ratelimited": slack.ratelimited,
    }


async def _check_slack_histories(redis: RedisClient, sent: list[SlackQuestion]) -> HistoryReport:
    """Each conversation (DM or thread, per user): whole, alternating, nothing lost."""
    asked: dict[ConversationKey, Counter[str]] = defaultdict(Counter)
    for q in sent:
        asked[ConversationKey("slack", q.channel, q.user, q.thread or "")][q.text] += 1
    return await _check_histories(redis, asked)


@pytest.mark.timeout(150)
async def test_slack_replicas_share_one_redis(
    shared_redis: SharedRedis,
    vllm_process: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    update_window = 60.0 * SLACK_SCALE
    slack = FakeSlack(
        update_limit=50,
        update_window=update_window - MEASURE_JITTER,
        post_limit=3,
        post_window=3 * SLACK_SCALE,
    )
    await slack.start()
    ports = [free_port() for _ in range(REPLICAS)]
    forwarder = RoundRobinForwarder([f"http://127.0.0.1:{p}" for p in ports])
    await forwarder.start()
    envs = _slack_envs(slack, ports, shared_redis, vllm_process)
    redis_client = shared_redis.client
    processes = await _start_fleet("slack", envs, tmp_path / "logs", ports)
    booted = time.monotonic() - started
    codes: dict[str, int] = {}
    try:
        async with fleet(processes):
            driver = SlackDriver(slack, forwarder.url + "/slack/events")
            rng = random.Random(11)
            run = time.monotonic()
            tasks = []
            for n in range(80):
                many = rng.choices([1, 2, 3], weights=[65, 25, 10])[0]
                tasks.append(asyncio.create_task(_slack_dm_conversation(driver, n, many, rng)))
                await asyncio.sleep(0.01)
            for c in range(4):
                for u in range(5):
                    tasks.append(
                        asyncio.create_task(
                            _slack_thread_conversation(
                                driver, f"C{c:07d}", f"UT{c}{u:05d}", rng.choice([1, 2]), rng
                            )
                        )
                    )
            await asyncio.gather(*tasks)
            await _until(lambda: driver.missing() == 0, timeout=90, what="every answer")
            await _until(lambda: _no_locks(redis_client), timeout=LEASE * 3, what="no turn running")
            await asyncio.sleep(0.3)
            seconds = time.monotonic() - run

            conversations = {(q.channel, q.user, q.thread) for q in driver.sent}
            assert len(conversations) == 100
            assert set(driver.statuses) == {200}
            assert all(a != b for a, b in driver.pairs)
            assert sorted(forwarder.hits()) == list(range(REPLICAS))
            for channel, thread in {(q.channel, q.thread) for q in driver.sent}:
                want = sorted(echo(q.text) for q in driver.sent if (q.channel, q.thread) == (
                    channel, thread))  # fmt: skip
                assert sorted(driver.answers(channel, thread)) == want, (channel, thread)
            report = await _check_slack_histories(redis_client, driver.sent)
            assert report.problems == []
            assert report.turns == len(driver.sent)

            pacing = _slack_pacing(slack, update_window)
            limited = [(c.method, c.args.get("channel")) for c in slack.calls if c.status == 429]
            assert limited == [], pacing
            assert pacing["workspace_max_updates_per_window"] <= 50, pacing
            # Posts spend the workspace budget too: all writes of the three replicas together
            # keep to one budget (one replica alone could use all of it; unshared budgets
            # would allow three times as many).
            assert pacing["workspace_max_writes_per_window"] <= 50, pacing
            assert pacing["workspace_writes_per_window_sustained"] <= 50 * 1.02, pacing
            assert pacing["channel_max_posts_per_interval"] <= 2, pacing
            codes = await stop_all(processes)
    finally:
        await forwarder.stop()
        await slack.close()
    _assert_clean_logs(processes, codes)
    print(
        f"\nslack replicas: boot {booted:.1f} s, run {seconds:.1f} s for {len(driver.sent)} "
        f"messages in 100 conversations ({len(driver.pairs)} event_ids delivered twice, 20 "
        f"mentions as app_mention + message), hits {dict(forwarder.hits())}, pacing {pacing}; "
        f"total {time.monotonic() - started:.1f} s"
    )
