"""What Parley says in answer to commands, once for every platform (Markdown)."""

from __future__ import annotations

from core.access import AccessMode
from core.audit import AuditEntry
from core.commands import CommandName, CommandSpec
from core.conversation import StoreStats
from core.personas import Persona, Personas
from core.quotas import QuotaUsage
from core.surfaces import Surface
from core.usage import UsageReport

PLATFORM_NAMES = {"telegram": "Telegram", "slack": "Slack", "terminal": "Terminal"}
_WHERE = {"terminal": "in this terminal"}


def platform_name(platform: str) -> str:
    """'Telegram', 'Slack', … for lists."""
    return PLATFORM_NAMES.get(platform, platform)


def where(platform: str) -> str:
    """'on Telegram', 'in this terminal', … for sentences."""
    return _WHERE.get(platform, f"on {platform_name(platform)}")


def plural(count: int, noun: str) -> str:
    """'1 conversation', '3 conversations'."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def start(surface: Surface) -> str:
    """The welcome: what Parley is and how to talk to it here."""
    c = surface.typed
    groups = {
        "telegram": "In groups, mention me or reply to one of my messages.\n\n",
        "slack": "In channels, mention me; keep talking in the thread to continue.\n\n",
    }.get(surface.platform, "")
    return (
        "👋 Hi, I'm **Parley**, an assistant powered by a reasoning model.\n\n"
        f"Write me a message and I'll answer; I remember our conversation until you "
        f"{c(CommandName.RESET)} it. While I think you'll see 💭, and you can "
        f"{c(CommandName.STOP)} me at any time.\n\n"
        f"{groups}Send {c(CommandName.HELP)} for the commands."
    )


def help_text(surface: Surface, specs: list[CommandSpec]) -> str:
    """The commands this person may use here, admin ones in their own part."""
    public = [s for s in specs if not s.admin]
    admin = [s for s in specs if s.admin]
    lines = ["**Commands**", ""]
    lines += [f"{surface.usage(s)} — {s.summary}" for s in public]
    if admin:
        lines += ["", "**Admin**", ""]
        lines += [f"{surface.usage(s)} — {s.summary}" for s in admin]
    if surface.platform == "terminal":
        lines += ["", "/exit — Leave (Ctrl-D too); Ctrl-C stops the answer being written"]
    return "\n".join(lines)


def unknown(surface: Surface, word: str) -> str:
    """A command Parley does not have."""
    return (
        f"I don't know that command ({word}). "
        f"Send {surface.typed(CommandName.HELP)} to see what I can do."
    )


NOT_ADMIN = "Sorry, only the bot's administrators can do that. Nothing was changed."
NO_CONVERSATION = "We have no conversation here yet. Send me a message to start one."
RESET_DONE = "Done: this conversation starts fresh."
RESET_NOTHING = "There was nothing to forget here."
NOTHING_RUNNING = "Nothing is running right now."
RETRYING = "Answering your last message again…"
CANCELLED = "Cancelled. Nothing was changed."
ONLY_ASKER = "Only the admin who asked can answer this."


def forgotten(count: int, platform: str) -> str:
    """/forget: how much was deleted, and where."""
    return (
        f"Deleted {plural(count, 'conversation')}: I no longer remember anything you told me "
        f"{where(platform)}, and your usage counters there are cleared."
    )


def usage_line(surface: Surface, spec: CommandSpec) -> str:
    """How to use a command whose argument was missing or wrong."""
    return f"Usage: {surface.usage(spec)}"


def bad_user(surface: Surface, spec: CommandSpec, given: str) -> str:
    """reset-user got something that is not a user here."""
    return f"{given!r} is not a user id here. " + usage_line(surface, spec)


def removed_of_user(count: int, target: str) -> str:
    """reset-user done."""
    return f"Removed {plural(count, 'conversation')} of user {target}."


def removed_in_chat(count: int) -> str:
    """reset-chat done."""
    return f"Removed {plural(count, 'conversation')} in this chat."


def removed_in_named_chat(count: int, chat: str) -> str:
    """reset-chat from the shell."""
    return f"Removed {plural(count, 'conversation')} in {chat}."


def removed_all(count: int) -> str:
    """reset-all done."""
    return f"Deleted all {plural(count, 'conversation')}."


RESET_ALL_QUESTION = (
    "⚠️ Delete **every** conversation Parley remembers, on all platforms? This cannot be undone."
)
RESET_ALL_YES = "Yes, delete everything"
RESET_ALL_NO = "Cancel"


def expired(surface: Surface, name: CommandName) -> str:
    """A confirmation answered too late (or twice)."""
    return f"This confirmation expired; send {surface.typed(name)} again."


def bad_entry(entry: str) -> str:
    """allow/deny got an entry of the wrong shape."""
    return (
        f"{entry!r} is not an access entry. Use platform:user_id, platform:chat:ID or "
        "slack:team:ID (a bare id means a user on this platform)."
    )


def access_changed(name: CommandName, entry: str) -> str:
    """allow/deny done."""
    verb = "Allowed" if name is CommandName.ALLOW else "Denied"
    return f"{verb}: `{entry}`"


def access_lists(mode: AccessMode, allowed: list[str], denied: list[str]) -> str:
    """The access mode and both lists."""

    def listed(entries: list[str]) -> str:
        return ", ".join(f"`{e}`" for e in entries) or "—"

    return (
        f"**Access:** {mode.value}\n"
        f"Allowed: {listed(allowed)}\n"
        f"Denied: {listed(denied)} (deny wins)"
    )


def audit_lines(entries: list[AuditEntry], when: list[str]) -> str:
    """The newest admin actions, newest first."""
    if not entries:
        return "The audit log is empty."
    lines = ["**Audit log** (newest first, UTC)", ""]
    for entry, at in zip(entries, when, strict=True):
        detail = f" ({entry.detail})" if entry.detail else ""
        lines.append(f"{at} `{entry.actor}` {entry.action} `{entry.target}`{detail}")
    return "\n".join(lines)


def stats(stored: StoreStats, report: UsageReport, personas: dict[str, int] | None = None) -> str:
    """What the bot remembers, how much it was used, and which personas chats picked."""
    lines = [
        "**Memory**",
        f"Conversations: {stored.conversations:,} ({stored.messages:,} messages)",
    ]
    lines += [f"• {platform_name(p)}: {n:,}" for p, n in sorted(stored.by_platform.items())]
    for title, period in (("Today (UTC)", report.today), ("Total", report.total)):
        lines += ["", f"**{title}**"]
        if not period:
            lines.append("No turns yet.")
        for p, u in sorted(period.items()):
            lines.append(
                f"• {platform_name(p)}: {plural(u.users, 'user')}, {plural(u.turns, 'turn')}, "
                f"{u.tokens_in:,} tokens in, {u.tokens_out:,} out"
            )
    if personas is not None:
        lines += ["", "**Personas** (chats that picked one)"]
        lines += [f"• {p}: {n:,}" for p, n in sorted(personas.items())] or ["None picked yet."]
    return "\n".join(lines)


def usage(spent: QuotaUsage, *, per_minute: int, per_day: int, admin: bool, resets_in: str) -> str:
    """/usage: the person's own consumption and what is left of their limits."""
    if admin:
        limits = "As an admin you have no limits."
    else:
        minute = (
            f"{max(0, per_minute - spent.messages_this_minute):,} of {per_minute:,} messages "
            "left this minute"
            if per_minute
            else "no limit on messages per minute"
        )
        day = (
            f"{max(0, per_day - spent.tokens_today):,} of {per_day:,} tokens left today "
            f"(resets in {resets_in})"
            if per_day
            else "no daily token limit"
        )
        limits = f"You have {minute}, and {day}."
    return (
        "**Your usage**\n"
        f"Messages this minute: {spent.messages_this_minute:,}\n"
        f"Tokens today (UTC): {spent.tokens_today:,}\n\n"
        f"{limits}"
    )


def duration(seconds: int) -> str:
    """ "45 s", "12 min", "3 h 5 min" for telling people when they can continue."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


# -- personas and instructions ---------------------------------------------------------------

NOT_CHAT_ADMIN = (
    "Only this chat's admins (or the bot's) can change its settings. Nothing was changed."
)
INSTRUCTIONS_CLEARED = "Instructions cleared: answers here follow the persona alone."
INSTRUCTIONS_NONE = "There were no instructions to clear."
INSTRUCTIONS_SAVED = "Saved: every answer here follows these instructions."
CLEAR_WORD = "clear"  # `/instructions clear`


def _persona_line(persona: Persona, *, current: bool) -> str:
    """One persona in a list: its title, id and description."""
    mark = " ✓" if current else ""
    about = f" — {persona.description}" if persona.description else ""
    return f"• **{persona.title}** (`{persona.id}`){mark}{about}"


def persona_list(
    surface: Surface, personas: Personas, current: Persona, *, may_change: bool, unknown: str = ""
) -> str:
    """/persona: the one in use here, every one on offer, and how to switch."""
    lines = [f"There is no persona called {unknown!r}.", ""] if unknown else []
    lines += [f"**Persona here:** {current.title}", ""]
    lines += [_persona_line(p, current=p.id == current.id) for p in personas]
    lines.append("")
    if may_change:
        lines.append(f"Switch with {surface.typed(CommandName.PERSONA, '<id>')}.")
    else:
        lines.append("Only this chat's admins (or the bot's) can switch it.")
    return "\n".join(lines)


def persona_set(persona: Persona) -> str:
    """/persona <id> done."""
    about = f" {persona.description}" if persona.description else ""
    return f"Persona here: **{persona.title}**.{about}"


def instructions_shown(surface: Surface, instructions: str, *, may_change: bool) -> str:
    """/instructions: this chat's own instructions, or how to set some."""
    typed = surface.typed(CommandName.INSTRUCTIONS, "<text>")
    if not instructions:
        how = f" Set some with {typed}." if may_change else ""
        return f"This chat has no instructions of its own.{how}"
    clear = surface.typed(CommandName.INSTRUCTIONS, CLEAR_WORD)
    how = f"\n\nChange them with {typed}, remove them with {clear}." if may_change else ""
    quoted = "\n".join(f"> {line}" if line else ">" for line in instructions.splitlines())
    return f"**Instructions here:**\n\n{quoted}{how}"


def instructions_too_long(length: int, limit: int) -> str:
    """/instructions <text> over the bound."""
    return (
        f"Instructions can be at most {limit:,} characters; these have {length:,}. "
        "Nothing was changed."
    )


def persona_report(personas: Personas, counts: dict[str, int]) -> str:
    """`parley admin persona`: every persona and how many chats picked it."""
    lines = ["**Personas**", ""]
    for persona in personas:
        default = " (default)" if persona.id == personas.default_id else ""
        chats = plural(counts.get(persona.id, 0), "chat")
        lines.append(f"• `{persona.id}`{default} — {persona.title}: {chats}")
    gone = {p: n for p, n in counts.items() if personas.get(p) is None}
    for persona_id, count in sorted(gone.items()):
        lines.append(
            f"• `{persona_id}` (no longer defined; the default answers): {plural(count, 'chat')}"
        )
    lines += ["", "Chats that never picked one use the default."]
    return "\n".join(lines)
