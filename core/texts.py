"""What Parley says in answer to commands, once for every platform (Markdown)."""

from __future__ import annotations

from core.access import AccessMode
from core.audit import AuditEntry
from core.commands import CommandName, CommandSpec
from core.conversation import StoreStats
from core.i18n import LANGUAGES, N_, Translator
from core.personas import Persona, Personas
from core.quotas import QuotaUsage
from core.surfaces import Surface
from core.usage import UsageReport

PLATFORM_NAMES = {"telegram": "Telegram", "slack": "Slack", "terminal": N_("Terminal")}


def platform_name(t: Translator, platform: str) -> str:
    """'Telegram', 'Slack', … for lists."""
    return t.gettext(PLATFORM_NAMES.get(platform, platform))


def where(t: Translator, platform: str) -> str:
    """'on Telegram', 'in this terminal', … for sentences."""
    if platform == "terminal":
        return t.gettext("in this terminal")
    return t.gettext("on {platform}").format(platform=platform_name(t, platform))


def number(count: int) -> str:
    """1,234: digits grouped the same way in every language Parley speaks."""
    return f"{count:,}"


def start(t: Translator, surface: Surface) -> str:
    """The welcome: what Parley is and how to talk to it here."""
    c = surface.typed
    groups = {
        "telegram": t.gettext("In groups, mention me or reply to one of my messages.") + "\n\n",
        "slack": t.gettext("In channels, mention me; keep talking in the thread to continue.")
        + "\n\n",
    }.get(surface.platform, "")
    welcome = t.gettext(
        "👋 Hi, I'm **Parley**, an assistant powered by a reasoning model.\n\n"
        "Write me a message and I'll answer; I remember our conversation until you {reset} it. "
        "While I think you'll see 💭, and you can {stop} me at any time."
    ).format(reset=c(CommandName.RESET), stop=c(CommandName.STOP))
    send_help = t.gettext("Send {help} for the commands.").format(help=c(CommandName.HELP))
    return f"{welcome}\n\n{groups}{send_help}"


def help_text(t: Translator, surface: Surface, specs: list[CommandSpec]) -> str:
    """The commands this person may use here, admin ones in their own part."""
    public = [s for s in specs if not s.admin]
    admin = [s for s in specs if s.admin]
    lines = [t.gettext("**Commands**"), ""]
    lines += [f"{surface.usage(s, t)} — {t.gettext(s.summary)}" for s in public]
    if admin:
        lines += ["", t.gettext("**Admin**"), ""]
        lines += [f"{surface.usage(s, t)} — {t.gettext(s.summary)}" for s in admin]
    if surface.platform == "terminal":
        lines += [
            "",
            t.gettext("/exit — Leave (Ctrl-D too); Ctrl-C stops the answer being written"),
        ]
    return "\n".join(lines)


def unknown(t: Translator, surface: Surface, word: str) -> str:
    """A command Parley does not have."""
    return t.gettext(
        "I don't know that command ({word}). Send {help} to see what I can do."
    ).format(word=word, help=surface.typed(CommandName.HELP))


NOT_ADMIN = N_("Sorry, only the bot's administrators can do that. Nothing was changed.")
NO_CONVERSATION = N_("We have no conversation here yet. Send me a message to start one.")
RESET_DONE = N_("Done: this conversation starts fresh.")
RESET_NOTHING = N_("There was nothing to forget here.")
NOTHING_RUNNING = N_("Nothing is running right now.")
RETRYING = N_("Answering your last message again…")
CANCELLED = N_("Cancelled. Nothing was changed.")
ONLY_ASKER = N_("Only the admin who asked can answer this.")


def forgotten(t: Translator, count: int, platform: str) -> str:
    """/forget: how much was deleted, and where."""
    return t.ngettext(
        "Deleted {count} conversation: I no longer remember anything you told me {where}, "
        "and your usage counters there are cleared.",
        "Deleted {count} conversations: I no longer remember anything you told me {where}, "
        "and your usage counters there are cleared.",
        count,
    ).format(count=number(count), where=where(t, platform))


def usage_line(t: Translator, surface: Surface, spec: CommandSpec) -> str:
    """How to use a command whose argument was missing or wrong."""
    return t.gettext("Usage: {usage}").format(usage=surface.usage(spec, t))


def bad_user(t: Translator, surface: Surface, spec: CommandSpec, given: str) -> str:
    """reset-user got something that is not a user here."""
    wrong = t.gettext("{given} is not a user id here.").format(given=repr(given))
    return f"{wrong} {usage_line(t, surface, spec)}"


def removed_of_user(t: Translator, count: int, target: str) -> str:
    """reset-user done."""
    return t.ngettext(
        "Removed {count} conversation of user {user}.",
        "Removed {count} conversations of user {user}.",
        count,
    ).format(count=number(count), user=target)


def removed_in_chat(t: Translator, count: int) -> str:
    """reset-chat done."""
    return t.ngettext(
        "Removed {count} conversation in this chat.",
        "Removed {count} conversations in this chat.",
        count,
    ).format(count=number(count))


def removed_in_named_chat(t: Translator, count: int, chat: str) -> str:
    """reset-chat from the shell."""
    return t.ngettext(
        "Removed {count} conversation in {chat}.",
        "Removed {count} conversations in {chat}.",
        count,
    ).format(count=number(count), chat=chat)


def removed_all(t: Translator, count: int) -> str:
    """reset-all done."""
    return t.ngettext(
        "Deleted all {count} conversation.", "Deleted all {count} conversations.", count
    ).format(count=number(count))


RESET_ALL_QUESTION = N_(
    "⚠️ Delete **every** conversation Parley remembers, on all platforms? This cannot be undone."
)
RESET_ALL_YES = N_("Yes, delete everything")
RESET_ALL_NO = N_("Cancel")


def expired(t: Translator, surface: Surface, name: CommandName) -> str:
    """A confirmation answered too late (or twice)."""
    return t.gettext("This confirmation expired; send {command} again.").format(
        command=surface.typed(name)
    )


def bad_entry(t: Translator, entry: str) -> str:
    """allow/deny got an entry of the wrong shape."""
    return t.gettext(
        "{entry} is not an access entry. Use platform:user_id, platform:chat:ID or "
        "slack:team:ID (a bare id means a user on this platform)."
    ).format(entry=repr(entry))


def access_changed(t: Translator, name: CommandName, entry: str) -> str:
    """allow/deny done."""
    if name is CommandName.ALLOW:
        return t.gettext("Allowed: `{entry}`").format(entry=entry)
    return t.gettext("Denied: `{entry}`").format(entry=entry)


def access_lists(t: Translator, mode: AccessMode, allowed: list[str], denied: list[str]) -> str:
    """The access mode and both lists."""

    def listed(entries: list[str]) -> str:
        return ", ".join(f"`{e}`" for e in entries) or "—"

    return t.gettext("**Access:** {mode}\nAllowed: {allowed}\nDenied: {denied} (deny wins)").format(
        mode=mode.value, allowed=listed(allowed), denied=listed(denied)
    )


def audit_lines(t: Translator, entries: list[AuditEntry], when: list[str]) -> str:
    """The newest admin actions, newest first."""
    if not entries:
        return t.gettext("The audit log is empty.")
    lines = [t.gettext("**Audit log** (newest first, UTC)"), ""]
    for entry, at in zip(entries, when, strict=True):
        detail = f" ({entry.detail})" if entry.detail else ""
        lines.append(f"{at} `{entry.actor}` {entry.action} `{entry.target}`{detail}")
    return "\n".join(lines)


def stats(
    t: Translator,
    stored: StoreStats,
    report: UsageReport,
    personas: dict[str, int] | None = None,
) -> str:
    """What the bot remembers, how much it was used, which personas chats picked, and in
    which languages Parley answered."""
    lines = [
        t.gettext("**Memory**"),
        t.ngettext(
            "Conversations: {conversations} ({messages} message)",
            "Conversations: {conversations} ({messages} messages)",
            stored.messages,
        ).format(conversations=number(stored.conversations), messages=number(stored.messages)),
    ]
    lines += [
        f"• {platform_name(t, p)}: {number(n)}" for p, n in sorted(stored.by_platform.items())
    ]
    periods = ((t.gettext("**Today (UTC)**"), report.today), (t.gettext("**Total**"), report.total))
    for title, period in periods:
        lines += ["", title]
        if not period:
            lines.append(t.gettext("No turns yet."))
        for p, u in sorted(period.items()):
            users = t.ngettext("{count} user", "{count} users", u.users)
            turns = t.ngettext("{count} turn", "{count} turns", u.turns)
            lines.append(
                t.gettext(
                    "• {platform}: {users}, {turns}, {tokens_in} tokens in, {tokens_out} out"
                ).format(
                    platform=platform_name(t, p),
                    users=users.format(count=number(u.users)),
                    turns=turns.format(count=number(u.turns)),
                    tokens_in=number(u.tokens_in),
                    tokens_out=number(u.tokens_out),
                )
            )
    if personas is not None:
        lines += ["", t.gettext("**Personas** (chats that picked one)")]
        picked = [f"• {p}: {number(n)}" for p, n in sorted(personas.items())]
        lines += picked or [t.gettext("None picked yet.")]
    lines += ["", t.gettext("**Languages** (conversations answered in each, today and in total)")]
    languages = sorted(set(report.languages_today) | set(report.languages_total))
    lines += [
        t.gettext("• {language}: {today} today, {total} in total").format(
            language=LANGUAGES.get(code, code),
            today=number(report.languages_today.get(code, 0)),
            total=number(report.languages_total.get(code, 0)),
        )
        for code in languages
    ] or [t.gettext("No turns yet.")]
    return "\n".join(lines)


def usage(
    t: Translator,
    spent: QuotaUsage,
    *,
    per_minute: int,
    per_day: int,
    admin: bool,
    resets_in: str,
) -> str:
    """/usage: the person's own consumption and what is left of their limits."""
    if admin:
        limits = t.gettext("As an admin you have no limits.")
    else:
        minute = (
            t.ngettext(
                "You have {left} of {limit} message left this minute.",
                "You have {left} of {limit} messages left this minute.",
                per_minute,
            ).format(
                left=number(max(0, per_minute - spent.messages_this_minute)),
                limit=number(per_minute),
            )
            if per_minute
            else t.gettext("You have no limit on messages per minute.")
        )
        day = (
            t.gettext("{left} of {limit} tokens left today (resets in {wait}).").format(
                left=number(max(0, per_day - spent.tokens_today)),
                limit=number(per_day),
                wait=resets_in,
            )
            if per_day
            else t.gettext("There is no daily token limit.")
        )
        limits = f"{minute} {day}"
    numbers = t.gettext(
        "**Your usage**\nMessages this minute: {messages}\nTokens today (UTC): {tokens}"
    ).format(messages=number(spent.messages_this_minute), tokens=number(spent.tokens_today))
    return f"{numbers}\n\n{limits}"


def duration(t: Translator, seconds: int) -> str:
    """ "45 s", "12 min", "3 h 5 min" for telling people when they can continue."""
    if seconds < 60:
        return t.gettext("{seconds} s").format(seconds=seconds)
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return t.gettext("{minutes} min").format(minutes=minutes)
    return t.gettext("{hours} h {minutes} min").format(hours=minutes // 60, minutes=minutes % 60)


# -- personas and instructions ---------------------------------------------------------------

NOT_CHAT_ADMIN = N_(
    "Only this chat's admins (or the bot's) can change its settings. Nothing was changed."
)
INSTRUCTIONS_CLEARED = N_("Instructions cleared: answers here follow the persona alone.")
INSTRUCTIONS_NONE = N_("There were no instructions to clear.")
INSTRUCTIONS_SAVED = N_("Saved: every answer here follows these instructions.")
CLEAR_WORD = "clear"  # `/instructions clear`: typed the same in every language
ID_ARGUMENT = N_("<id>")
TEXT_ARGUMENT = N_("<text>")


def _persona_line(persona: Persona, *, current: bool) -> str:
    """One persona in a list: its title, id and description (the operator's own words)."""
    mark = " ✓" if current else ""
    about = f" — {persona.description}" if persona.description else ""
    return f"• **{persona.title}** (`{persona.id}`){mark}{about}"


def persona_list(
    t: Translator,
    surface: Surface,
    personas: Personas,
    current: Persona,
    *,
    may_change: bool,
    unknown: str = "",
) -> str:
    """/persona: the one in use here, every one on offer, and how to switch."""
    lines = []
    if unknown:
        lines += [t.gettext("There is no persona called {name}.").format(name=repr(unknown)), ""]
    lines += [t.gettext("**Persona here:** {title}").format(title=current.title), ""]
    lines += [_persona_line(p, current=p.id == current.id) for p in personas]
    lines.append("")
    if may_change:
        typed = surface.typed(CommandName.PERSONA, t.gettext(ID_ARGUMENT))
        lines.append(t.gettext("Switch with {command}.").format(command=typed))
    else:
        lines.append(t.gettext("Only this chat's admins (or the bot's) can switch it."))
    return "\n".join(lines)


def persona_set(t: Translator, persona: Persona) -> str:
    """/persona <id> done."""
    about = f" {persona.description}" if persona.description else ""
    return t.gettext("Persona here: **{title}**.").format(title=persona.title) + about


def instructions_shown(
    t: Translator, surface: Surface, instructions: str, *, may_change: bool
) -> str:
    """/instructions: this chat's own instructions, or how to set some."""
    typed = surface.typed(CommandName.INSTRUCTIONS, t.gettext(TEXT_ARGUMENT))
    if not instructions:
        none = t.gettext("This chat has no instructions of its own.")
        if not may_change:
            return none
        return f"{none} " + t.gettext("Set some with {command}.").format(command=typed)
    clear = surface.typed(CommandName.INSTRUCTIONS, CLEAR_WORD)
    how = (
        "\n\n"
        + t.gettext("Change them with {change}, remove them with {clear}.").format(
            change=typed, clear=clear
        )
        if may_change
        else ""
    )
    quoted = "\n".join(f"> {line}" if line else ">" for line in instructions.splitlines())
    return t.gettext("**Instructions here:**") + f"\n\n{quoted}{how}"


def instructions_too_long(t: Translator, length: int, limit: int) -> str:
    """/instructions <text> over the bound."""
    return t.gettext(
        "Instructions can be at most {limit} characters; these have {length}. Nothing was changed."
    ).format(limit=number(limit), length=number(length))


def persona_report(t: Translator, personas: Personas, counts: dict[str, int]) -> str:
    """`parley admin persona`: every persona and how many chats picked it."""
    lines = [t.gettext("**Personas**"), ""]

    def chats(count: int) -> str:
        return t.ngettext("{count} chat", "{count} chats", count).format(count=number(count))

    for persona in personas:
        default = " " + t.gettext("(default)") if persona.id == personas.default_id else ""
        picked = chats(counts.get(persona.id, 0))
        lines.append(f"• `{persona.id}`{default} — {persona.title}: {picked}")
    gone = {p: n for p, n in counts.items() if personas.get(p) is None}
    for persona_id, left in sorted(gone.items()):
        gone_line = t.gettext("(no longer defined; the default answers)")
        lines.append(f"• `{persona_id}` {gone_line}: {chats(left)}")
    lines += ["", t.gettext("Chats that never picked one use the default.")]
    return "\n".join(lines)


# -- languages --------------------------------------------------------------------------------

AUTO_WORD = "auto"  # `/language auto`: typed the same in every language
CODE_ARGUMENT = N_("<code>")


def language_shown(
    t: Translator,
    surface: Surface,
    *,
    chosen: bool,
    unknown: str = "",
) -> str:
    """/language: the language in use, where it comes from, the choices and how to pick."""
    lines = []
    if unknown:
        lines += [t.gettext("I don't speak {given} yet.").format(given=repr(unknown)), ""]
    source = (
        t.gettext("you chose it")
        if chosen
        else t.gettext("your language setting {where}").format(where=where(t, surface.platform))
    )
    lines += [
        t.gettext("**Language:** {language} ({source})").format(language=t.name, source=source),
        "",
    ]
    lines += [
        f"• {name} (`{code}`)" + (" ✓" if code == t.language else "")
        for code, name in LANGUAGES.items()
    ]
    lines += [
        "",
        t.gettext("Switch with {command}; {auto} follows your language setting again.").format(
            command=surface.typed(CommandName.LANGUAGE, t.gettext(CODE_ARGUMENT)),
            auto=surface.typed(CommandName.LANGUAGE, AUTO_WORD),
        ),
    ]
    return "\n".join(lines)


def language_set(t: Translator) -> str:
    """/language <code> done: said in the new language."""
    return t.gettext("Done: from now on I speak {language} with you.").format(language=t.name)


def language_auto(t: Translator, platform: str) -> str:
    """/language auto done: said in the platform's language."""
    return t.gettext("Done: I follow your language setting {where} again ({language}).").format(
        where=where(t, platform), language=t.name
    )
