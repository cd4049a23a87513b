"""What the Slack adapter remembers in Redis, so every replica agrees on it."""

from __future__ import annotations

from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded


class SlackMemory:
    """Threads Parley is part of, and each person's latest thread per channel."""

    def __init__(self, redis: RedisClient, keys: KeySpace, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds or 30 * 24 * 3600

    def _key(self, *parts: str) -> str:
        """A key under Parley's prefix."""
        return self._keys.named("slack", *parts)

    async def joined(self, channel: str, thread_ts: str, user: str) -> None:
        """Parley answers in this thread from now on; remember it as the user's latest too."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("thread", channel, thread_ts), 1, ex=self._ttl)
            pipe.set(self._key("last", channel, user), thread_ts, ex=self._ttl)
            await pipe.execute()

    async def is_part_of(self, channel: str, thread_ts: str) -> bool:
        """Whether Parley has answered in this thread."""
        return bool(await self._redis.exists(self._key("thread", channel, thread_ts)))

    async def set_latest(self, channel: str, user: str, thread_ts: str) -> None:
        """The thread `/parley stop|reset|retry` in this channel refers to ("" for a DM's top)."""
        await self._redis.set(self._key("last", channel, user), thread_ts, ex=self._ttl)

    async def latest(self, channel: str, user: str) -> str | None:
        """The user's latest thread in this channel, if any."""
        value = await self._redis.get(self._key("last", channel, user))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def assistant_thread(self, channel: str, thread_ts: str, context: str) -> None:
        """An assistant-pane thread (and the context it shows, JSON): Parley's assistant
        handling answers in it, and the channel the person views is kept beside it."""
        await self._redis.set(self._key("assistant", channel, thread_ts), context, ex=self._ttl)

    async def is_assistant_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether this DM thread began in Slack's assistant pane."""
        return bool(await self._redis.exists(self._key("assistant", channel, thread_ts)))

    async def assistant_context(self, channel: str, thread_ts: str) -> str | None:
        """The context last kept for an assistant thread (JSON), if any."""
        value = await self._redis.get(self._key("assistant", channel, thread_ts))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def first_question(self, channel: str, thread_ts: str) -> bool:
        """True once per assistant thread: its first question names it."""
        key = self._key("titled", channel, thread_ts)
        return bool(await self._redis.set(key, 1, nx=True, ex=self._ttl))

    async def forget_user(self, platform: str, user: str) -> None:
        """/forget: drop which thread was this person's latest, in every channel."""
        if platform != "slack":
            return
        pattern = self._key("last", "*", user)

        async def run() -> None:
            async for name in self._redis.scan_iter(match=pattern, count=500):
                await self._redis.unlink(name)

        await guarded("forget", run)
