"""Which answer is which: the record behind an answer's buttons, and the conversation's newest.

Buttons and edits name an answer, never a conversation (Telegram's callback data holds 64 bytes),
so each answer leaves a small record in Redis: its conversation, who asked, the question's
message id and the messages it is shown in. Only the newest answer of a conversation may still be
stopped, regenerated, continued or re-asked by an edit.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import orjson

from core.conversation import ConversationKey
from core.errors import StoreError
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

log = logging.getLogger(__name__)

EDIT_WINDOW_SECONDS = 10 * 60  # an edited question is answered again only this soon after
_EDIT_MARK_SECONDS = 24 * 3600  # one edit event is answered once, whatever Slack redelivers


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One answer as its buttons and edits need it."""

    id: str
    key: ConversationKey
    owner: str  # the user id of the person answered
    question: str = ""  # the platform's id of the question's message ("" when there is none)
    at: float = 0.0  # wall time the answer began
    refs: tuple[str, ...] = ()  # the messages showing it, in order
    saved: bool = False  # stored in the history: it can be regenerated, continued, re-asked
    continuable: bool = False  # cut by the token limit

    def ended(self, refs: list[str], *, saved: bool, continuable: bool) -> AnswerRecord:
        """The record once the answer is final."""
        return replace(self, refs=tuple(refs), saved=saved, continuable=continuable)


def _encode(record: AnswerRecord) -> bytes:
    data = asdict(record)
    data["key"] = asdict(record.key)
    return orjson.dumps(data)


def _decode(raw: bytes | str) -> AnswerRecord | None:
    try:
        data = orjson.loads(raw)
        return AnswerRecord(
            id=str(data["id"]),
            key=ConversationKey(**{k: str(v) for k, v in data["key"].items()}),
            owner=str(data["owner"]),
            question=str(data.get("question", "")),
            at=float(data.get("at", 0.0)),
            refs=tuple(str(ref) for ref in data.get("refs", ())),
            saved=bool(data.get("saved")),
            continuable=bool(data.get("continuable")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("skipping an unreadable answer record")
        return None


class AnswerBook:
    """Answer records in Redis, shared by every replica; they live as long as the history."""

    def __init__(self, redis: RedisClient, keys: KeySpace, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds or 30 * 24 * 3600

    async def begin(self, record: AnswerRecord) -> None:
        """An answer starts: record it, and make it the conversation's newest."""

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._keys.answer(record.id), _encode(record), ex=self._ttl)
                pipe.set(self._keys.latest_answer(record.key), record.id, ex=self._ttl)
                await pipe.execute()

        await guarded("answer record", run)

    async def end(self, record: AnswerRecord) -> None:
        """The answer is final: its messages and whether it was stored."""

        async def run() -> object:
            return await self._redis.set(
                self._keys.answer(record.id), _encode(record), ex=self._ttl
            )

        await guarded("answer record", run)

    async def get(self, answer_id: str) -> AnswerRecord | None:
        """An answer's record, if it is still kept."""
        raw = await guarded("answer record", lambda: self._redis.get(self._keys.answer(answer_id)))
        return _decode(raw) if raw is not None else None

    async def latest(self, key: ConversationKey) -> AnswerRecord | None:
        """The conversation's newest answer."""
        raw = await guarded("newest answer", lambda: self._redis.get(self._keys.latest_answer(key)))
        if raw is None:
            return None
        return await self.get(raw.decode() if isinstance(raw, bytes) else str(raw))

    async def is_latest(self, record: AnswerRecord) -> bool:
        """Whether no newer answer began in its conversation since."""
        raw = await guarded(
            "newest answer", lambda: self._redis.get(self._keys.latest_answer(record.key))
        )
        latest = raw.decode() if isinstance(raw, bytes) else raw
        return latest == record.id

    async def first_edit(self, record: AnswerRecord, version: str) -> bool:
        """True once per edit of the answer's question (a redelivered event is not re-answered)."""
        name = self._keys.named("edit", self._keys.tag(record.key), record.question, version)

        async def run() -> bool:
            return bool(await self._redis.set(name, 1, nx=True, ex=_EDIT_MARK_SECONDS))

        try:
            return await guarded("edit mark", run)
        except StoreError as exc:
            log.warning("cannot tell whether an edit was answered already: %s", exc)
            return True
