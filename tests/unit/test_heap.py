"""freeze_long_lived: what the long-running processes call once started (f2f_cli/heap.py)."""

from __future__ import annotations

import gc

from f2f_cli.heap import freeze_long_lived


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_objects_alive_at_the_call_leave_the_collector_and_later_ones_do_not() -> None:
    before = gc.get_freeze_count()
    kept = [_Cycle() for _ in range(100)]
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() >= before + 100
        assert not any(gc.is_tracked(x) and x in gc.get_objects(2) for x in kept[:3])
        later = _Cycle()
        assert any(o is later for o in gc.get_objects(0))  # a new object is collected as usual
    finally:
        gc.unfreeze()  # this test process runs on: give everything back to the collector
        assert gc.get_freeze_count() == 0


def test_garbage_is_collected_before_freezing() -> None:
    _Cycle()  # unreachable at once, but a cycle: only the collector frees it
    try:
        freeze_long_lived()
    finally:
        gc.unfreeze()  # frozen objects are listed by no generation: give them back to look
    assert not [o for o in gc.get_objects() if type(o) is _Cycle]
