"""gcpolicy: while on, what survives a full collection is frozen (the next one skips it); a
garbage cycle frozen that way is found by the next ``refresh``; off, nothing more is frozen."""

from __future__ import annotations

import gc
import weakref

from umig_monitor import gcpolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_survivors_of_a_full_collection_are_frozen_until_a_refresh_collects_them() -> None:
    gcpolicy.start()
    try:
        kept = cycle()  # alive across the collection: frozen by it
        holder = kept()
        gc.collect()
        assert gc.get_freeze_count() > 0
        del holder  # now garbage, but frozen: no collection looks at it
        gc.collect()
        assert kept() is not None
        assert gcpolicy.refresh() >= 2
        assert kept() is None
    finally:
        gcpolicy.stop()
    assert gcpolicy._freeze_survivors not in gc.callbacks


def test_off_survivors_stay_in_the_collector() -> None:
    gcpolicy.start()
    gcpolicy.start()  # two daemons in one process
    gcpolicy.stop()
    assert gcpolicy._freeze_survivors in gc.callbacks  # the other still runs
    gcpolicy.stop()
    kept = cycle()
    holder = kept()
    gc.collect()
    del holder
    gc.collect()
    assert kept() is None
