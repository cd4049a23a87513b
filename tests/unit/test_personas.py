"""PERSONAS_FILE: what loads, what stops Parley at start (one line naming the line), and the
layers of instructions a turn sends (operator, persona, chat), kept whole when history is cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.briefing import Briefing
from core.chat_admins import ChatAdmins
from core.chat_settings import ChatScope
from core.commands import Caller
from core.context import fit
from core.conversation import Role, StoredMessage
from core.errors import ConfigError, PlatformError
from core.persona_file import DEFAULT_FILE, load_personas, parse_personas
from core.personas import Personas
from core.settings import CoreSettings

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
personas:
  - id: plain
    title: Plain
  - id: pirate
    title: Pirate
    description: Talks like a pirate.
    instructions: |
      Speak like a pirate.
    temperature: 0.7
    top_p: 0.9
    max_tokens: 1024
    model: other-model
"""


def error_of(text: str, default: str = "") -> str:
    """The one-line ConfigError a personas text gives."""
    with pytest.raises(ConfigError) as caught:
        parse_personas(text, default, name="p.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_shipped_example_loads_and_is_the_default_file() -> None:
    assert CoreSettings.model_fields["personas_file"].default == DEFAULT_FILE
    personas = load_personas(str(ROOT / DEFAULT_FILE))
    assert len(personas) >= 2
    assert personas.default_id == next(iter(personas)).id
    assert all(p.temperature is None or 0.5 <= p.temperature <= 0.7 for p in personas)


def test_a_valid_file() -> None:
    personas = parse_personas(GOOD, "PIRATE")
    assert [p.id for p in personas] == ["plain", "pirate"]
    assert personas.default.id == "pirate"
    pirate = personas.default
    assert pirate.instructions == "Speak like a pirate."
    assert (pirate.temperature, pirate.top_p, pirate.max_tokens, pirate.model) == (
        0.7,
        0.9,
        1024,
        "other-model",
    )
    assert personas.chosen("") is pirate  # no choice: the default
    assert personas.chosen("gone").id == "pirate"  # a persona removed from the file
    assert personas.get("Plain") is not None  # ids are typed in any case
    assert parse_personas(GOOD).default.id == "plain"  # the first one by default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("temperature: 0.7", "temperature: 2.5"), "line 9: personas[1].temperature"),
        (GOOD.replace("top_p: 0.9", "top_p: 0"), "line 10: personas[1].top_p"),
        (GOOD.replace("max_tokens: 1024", "max_tokens: 2"), "line 11: personas[1].max_tokens"),
        (GOOD.replace("    model: other-model", "    modle: x"), "line 12: personas[1].modle"),
        (GOOD.replace("id: pirate", "id: Pirate Bay"), "line 4: personas[1].id"),
        (GOOD.replace("id: pirate", "id: plain"), "line 4: the id 'plain' is used twice"),
        (GOOD.replace("    top_p: 0.9", "    title: Again"), "line 10: 'title' is given twice"),
        (GOOD.replace("  - id: plain\n    title: Plain\n", "  - id: plain\n"), "line 2:"),
        (GOOD.replace("title: Pirate", "title: [Pirate"), "line 6: not valid YAML"),
        ("personas: []\n", "line 1: personas"),
        ("", "line 1: expected 'personas:'"),
        ("- id: x\n", "line 1: expected 'personas:'"),
    ],
)
def test_a_bad_file_names_the_line(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith("PERSONAS_FILE p.yaml, line ")
    assert expected in message


def test_default_persona_must_exist() -> None:
    message = error_of(GOOD, "ninja")
    assert message == "DEFAULT_PERSONA=ninja is not in PERSONAS_FILE p.yaml (it has: plain, pirate)"


def test_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_personas(DEFAULT_FILE).default.id == "default"  # no example here: plain
    assert load_personas("").default.id == "default"
    with pytest.raises(ConfigError, match=r"PERSONAS_FILE=mine.yaml: no such file"):
        load_personas("mine.yaml")
    with pytest.raises(ConfigError, match="DEFAULT_PERSONA=pirate names a persona"):
        load_personas("", "pirate")


def briefing(instructions: str = "Be kind.") -> Briefing:
    """Operator instructions plus the pirate file."""
    settings = CoreSettings(_env_file=None, llm_instructions=instructions)
    return Briefing(settings, parse_personas(GOOD))


def test_layers_in_order_and_sampling_from_the_persona() -> None:
    brief = briefing().compose("pirate", "Call me Ada.")
    assert brief.instructions == "Be kind.\n\nSpeak like a pirate.\n\nCall me Ada."
    assert (brief.temperature, brief.top_p, brief.max_tokens, brief.model) == (
        0.7,
        0.9,
        1024,
        "other-model",
    )
    plain = briefing("").compose("", "")
    assert plain.instructions == ""
    assert (plain.temperature, plain.model) == (None, None)  # the configured defaults apply
    assert briefing().compose("plain", "").instructions == "Be kind."


def test_the_fitter_keeps_every_layer_when_history_is_cut() -> None:
    brief = briefing().compose("pirate", "Call me Ada.")
    history = []
    for n in range(50):
        history += [StoredMessage(Role.USER, f"q{n}", 40), StoredMessage(Role.ASSISTANT, "a", 60)]
    fitted = fit(
        history,
        StoredMessage(Role.USER, "now", 5),
        budget=600,
        instructions=brief.instructions,
        instruction_tokens=20,
    )
    assert fitted.dropped_turns > 0
    first = fitted.messages[0]
    assert first.role == "user"
    assert first.content.startswith(brief.instructions + "\n\n")
    assert sum(m.content.count("Speak like a pirate.") for m in fitted.messages) == 1
    assert fitted.messages[-1].content == "now"


def test_settings_belong_to_the_chat_in_groups_and_to_the_person_in_private() -> None:
    in_group = Caller("telegram", "7", "-100", group=True)
    assert ChatScope.of(in_group) == ChatScope("telegram", "-100")
    assert ChatScope.of(Caller("telegram", "8", "-100", group=True)) == ChatScope.of(in_group)
    alone = Caller("slack", "U1", "D1")
    assert ChatScope.of(alone) == ChatScope.private("slack", "U1") != ChatScope("slack", "D1")


class FakeClock:
    """Time that moves only when told."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


class Roles:
    """A platform that answers from a set, counting questions; fails when told."""

    def __init__(self) -> None:
        self.admins = {"boss"}
        self.asked = 0
        self.failing = False

    async def is_chat_admin(self, chat: str, user: str) -> bool:
        self.asked += 1
        if self.failing:
            raise PlatformError("cannot reach the platform")
        return user in self.admins


async def test_chat_admins_are_asked_once_a_minute_and_a_failure_means_no() -> None:
    clock = FakeClock()
    roles = Roles()
    admins = ChatAdmins(clock)
    admins.register("telegram", roles)
    assert await admins("telegram", "-1", "boss")
    assert not await admins("telegram", "-1", "bob")
    assert await admins("telegram", "-1", "boss")
    assert roles.asked == 2  # the second answer came from the cache
    roles.admins.clear()  # demoted: believed once the cached answer is a minute old
    clock.t += 61
    assert not await admins("telegram", "-1", "boss")
    roles.failing = True
    clock.t += 61
    assert not await admins("telegram", "-1", "bob")
    assert not await admins("slack", "C1", "boss")  # no lookup for that platform: no
    assert Personas.plain().default.id == "default"
