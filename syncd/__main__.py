"""The `syncd` process's entry: `python -m syncd` and the `syncd` console script.

Importing the command (~500 modules; ~85,000 tracked objects that live as long as the
process) runs with the cycle collector paused, and those objects are then frozen out of its
generations. Otherwise the collector runs over a hundred times while they load, each of its
full passes walking everything loaded so far, and every later full pass (the daemon's) walks
them again: about a fifth of a 304-only `syncd sync`'s CPU (docs/design.md, "A pass of 304s").
Only the process entry does this; importing `syncd.cli` as a library leaves the collector as
it is. Objects frozen are never collected as cycles: they are modules, classes and functions,
alive until the process ends anyway.

The young generation is then collected every `YOUNG_THRESHOLD` allocations instead of 700:
a poll allocates some hundred containers that nearly all die young by reference counting,
so at 700 the collector ran after every few polls, walking objects about to go anyway (~20
runs, ~2.5 ms of a 304-only `syncd sync` of 200 feeds; 2 at this threshold). Cycles are still
collected, a little later; the older generations keep their thresholds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 5_000


def run() -> None:
    gc.disable()
    try:
        from syncd.cli import main
    finally:
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()
    main()


if __name__ == "__main__":
    run()
