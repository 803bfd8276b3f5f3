"""Keeping the collector's full passes short: what start-up built is frozen out of them."""

from __future__ import annotations

import gc

_frozen = 0  # apps that froze the heap and have not thawed it yet


def freeze_startup() -> None:
    """Move every object alive now (modules, classes, the widget tree) out of the
    collector's reach: a full pass then walks only what was made since.

    A full (generation 2) pass walks every tracked object and runs on the UI loop, in the
    middle of whatever allocated last: with ~100,000 objects of start-up it took 50-150 ms
    of CPU (0.2-0.7 s of wall time on a loaded machine), every 10-30 s while small files
    upload, and key presses waited for it (bench case 10). Frozen objects are still freed
    by reference counting; only cycles among them wait for `thaw`.
    """
    global _frozen
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()
    _frozen += 1


def thaw() -> None:
    """The app leaves: the frozen objects go back to the collector (the last one out)."""
    global _frozen
    if _frozen <= 0:
        return
    _frozen -= 1
    if _frozen == 0:
        gc.unfreeze()
