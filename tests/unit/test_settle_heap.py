"""settle_heap: what a long-running process has alive once it is up is kept out of the
garbage collector's full collections, which would otherwise scan it all again each time."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.app.wiring.process import settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process itself goes on as before


def test_what_is_alive_once_up_leaves_the_collectors_sight(unfrozen: None) -> None:
    kept = [[n] for n in range(1000)]  # lists: objects the collector tracks
    assert any(o is kept[0] for o in gc.get_objects())
    tracked_before = len(gc.get_objects())
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(o is kept[0] for o in gc.get_objects()), "a survivor is frozen"
    assert len(gc.get_objects()) < tracked_before - len(kept), "the survivors are frozen"


def test_garbage_is_collected_first_not_frozen(unfrozen: None) -> None:
    class Cycle:
        me: object

    gc.disable()  # only settle_heap may collect it
    try:
        cycle = Cycle()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        assert gone() is not None, "a cycle outlives its last name until a collection"
        settle_heap()
    finally:
        gc.enable()
    assert gone() is None, "collected, not frozen"
    assert gc.get_freeze_count() > 0
