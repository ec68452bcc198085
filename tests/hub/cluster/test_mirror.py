"""A hub's view of devices registered elsewhere, on plain values (hub/cluster/mirror.py)."""

from __future__ import annotations

from hub.cluster.mirror import Event, EventKind, Mirror, StoredStatus
from hub.cluster.wire import Code, DeviceMessage, snapshot_items, status_version
from hub.connections import status_frame

ONLINE = status_frame("d", True, None)
OFFLINE = status_frame("d", False, None)


def mirror() -> Mirror:
    return Mirror("here", lambda device_id: status_frame(device_id, False, None))


def msg(hub: str, epoch: int, *items: tuple[Code, str]) -> DeviceMessage:
    return DeviceMessage(hub, epoch, items)


def frames(events: list[Event], kind: EventKind) -> list[str]:
    return [f for e in events if e.kind is kind for f in e.frames]


def test_a_connect_snapshot_changes_status_for_followers_and_starts_waiters() -> None:
    m = mirror()
    events = m.apply("d", msg("a", 1, *snapshot_items(ONLINE, None, "r0")))
    assert events == [
        Event(EventKind.FRAME, (ONLINE,)),
        Event(EventKind.SNAPSHOT, (ONLINE, "r0")),
    ]
    events = m.apply("d", msg("a", 1, (Code.READING, "r1"), (Code.READING, "r2")))
    assert frames(events, EventKind.FRAME) == ["r1", "r2"]
    assert m.current("d") == (ONLINE, "r2")


def test_an_answer_to_a_watch_repeats_nothing_to_followers() -> None:
    m = mirror()
    m.apply("d", msg("a", 1, *snapshot_items(ONLINE, None, None)))
    again = m.apply("d", msg("a", 1, *snapshot_items(ONLINE, "h", "r5")))
    assert frames(again, EventKind.FRAME) == []
    assert frames(again, EventKind.SNAPSHOT) == [ONLINE, "h", "r5"]


def test_an_owner_that_lost_the_device_is_not_heard_any_more() -> None:
    m = mirror()
    m.apply("d", msg("b", 2, *snapshot_items(ONLINE, None, None)))
    assert m.apply("d", msg("a", 1, (Code.READING, "late"))) == []
    assert m.apply("d", msg("a", 1, *snapshot_items(OFFLINE, None, None))) == []
    assert m.counters.stale_dropped == 2
    assert m.current("d")[0] == ONLINE


def test_own_messages_are_ignored() -> None:
    m = mirror()
    assert m.apply("d", msg("here", 1, (Code.READING, "r"))) == []


def test_settling_on_a_stored_offline_status_starts_waiters_at_once() -> None:
    m = mirror()
    stored = StoredStatus(
        status_version(3, False), msg("a", 3, *snapshot_items(OFFLINE, None, "r9"))
    )
    settled = m.settle("d", stored, owner_alive=False)
    assert not settled.wait
    assert frames(list(settled.events), EventKind.SNAPSHOT) == [OFFLINE, "r9"]


def test_settling_on_an_online_device_waits_for_its_owner() -> None:
    m = mirror()
    stored = StoredStatus(status_version(3, True), msg("a", 3, *snapshot_items(ONLINE, None, None)))
    settled = m.settle("d", stored, owner_alive=True)
    assert settled.wait
    assert frames(list(settled.events), EventKind.SNAPSHOT) == []
    assert m.current("d") == (ONLINE,)


def test_an_online_status_whose_owner_died_reads_offline() -> None:
    m = mirror()
    stored = StoredStatus(status_version(3, True), msg("a", 3, *snapshot_items(ONLINE, None, None)))
    settled = m.settle("d", stored, owner_alive=False)
    assert not settled.wait
    assert frames(list(settled.events), EventKind.SNAPSHOT) == [OFFLINE]


def test_a_device_never_seen_is_offline_since_unknown() -> None:
    settled = mirror().settle("d", None, owner_alive=False)
    assert frames(list(settled.events), EventKind.SNAPSHOT) == [OFFLINE]
