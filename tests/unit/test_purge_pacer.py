"""The purge's pacing rule, on its own: sizes and pauses from batch and probe times (no database)."""

from __future__ import annotations

from f2f_cli.ops.purge import PurgePacer


def test_quick_batches_and_reads_grow_the_batch_up_to_the_limit() -> None:
    pacer = PurgePacer(max_size=5000, baseline=0.001)
    sizes = []
    for _ in range(12):
        pause = pacer.next_pause(batch_seconds=0.005, probe_seconds=0.004)
        sizes.append(pacer.size)
        assert pause == 0.005  # never more than half the time: pause = batch time at a 0.5 share
    assert sizes == sorted(sizes) and sizes[-1] == 5000


def test_a_slow_live_read_halves_the_batch_and_backs_off() -> None:
    pacer = PurgePacer(max_size=5000, size=4000, baseline=0.001)
    pause = pacer.next_pause(batch_seconds=0.02, probe_seconds=0.060)
    assert pacer.size == 2000
    assert pause >= 2 * 0.060  # waits out the slow read before the next batch


def test_slow_is_judged_against_the_reads_before_the_purge() -> None:
    busy = PurgePacer(max_size=5000, baseline=0.020)  # a machine where a read takes 20 ms anyway
    assert not busy.felt(0.060)
    assert busy.felt(0.080)
    quiet = PurgePacer(max_size=5000, baseline=0.001)
    assert quiet.felt(0.020) and not quiet.felt(0.005)


def test_a_long_batch_shrinks_the_next_one_but_never_below_the_floor() -> None:
    pacer = PurgePacer(max_size=5000, size=2000, min_size=500)
    for _ in range(5):
        pacer.next_pause(batch_seconds=0.5, probe_seconds=0.001)
    assert pacer.size == 500


def test_pauses_are_bounded_and_a_tiny_limit_is_respected() -> None:
    pacer = PurgePacer(max_size=2)
    assert pacer.size == 2 and pacer.min_size == 2
    assert pacer.next_pause(batch_seconds=30.0, probe_seconds=10.0) == pacer.max_pause
    assert pacer.size == 2
