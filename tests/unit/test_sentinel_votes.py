"""When a write no replica acked may stand on a Sentinel-managed Redis: the sentinels' votes."""

from __future__ import annotations

from typing import Any

from core.store.redis_store import master_confirmed

OLD = ("127.0.0.1", 6379)
NEW = ("127.0.0.1", 6380)


def state(address: tuple[str, int], flags: str | set[str] = "master") -> dict[str, Any]:
    """A sentinel's reply to SENTINEL MASTER, as redis-py parses it."""
    return {"ip": address[0], "port": address[1], "flags": flags}


def test_every_sentinel_naming_the_address_confirms_it() -> None:
    assert master_confirmed([state(OLD)] * 3, OLD, 3)


def test_a_majority_that_answered_is_enough_when_one_sentinel_is_down() -> None:
    assert master_confirmed([state(OLD)] * 2, OLD, 3)
    assert not master_confirmed([state(OLD)], OLD, 3)


def test_the_leader_naming_the_new_master_before_the_others_hear_of_it_refuses() -> None:
    # Two of three still name the old master (a majority), but the failover has happened.
    assert not master_confirmed([state(NEW), state(OLD), state(OLD)], OLD, 3)


def test_a_failover_under_way_refuses() -> None:
    leader = state(OLD, "master,failover_in_progress")
    assert not master_confirmed([leader, state(OLD), state(OLD)], OLD, 3)
    assert not master_confirmed([state(OLD, {"master", "failover_in_progress"})], OLD, 1)


def test_the_port_as_text_is_the_same_address() -> None:
    assert master_confirmed([{"ip": "127.0.0.1", "port": "6379", "flags": "master"}], OLD, 1)
