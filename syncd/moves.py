"""The pure decision on permanent redirects of a feed's first page (DESIGN §4.10).

A feed is fetched at a new URL only when the move is *stable* (the same 301/308 target on
`ADOPT_AFTER` consecutive polls) and the document there *parses as the same feed* (same title as
stored). A temporary redirect, a target that keeps changing, or a different feed adopts nothing:
redirects are still followed each time, so nothing is missed meanwhile. No I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

ADOPT_AFTER = 3


@dataclass(frozen=True, slots=True)
class MoveState:
    """A feed's permanent redirect under observation: adopted once stable (`observe_move`)."""

    moved_to: str | None  # the permanent-redirect target seen on recent polls
    seen: int  # on how many consecutive polls
    adopt: bool = False  # stable and the same feed: fetch `moved_to` from now on


def observe_move(
    state: MoveState,
    *,
    requested: str,
    final: str,
    permanent: bool,
    same_feed: bool | None,
    threshold: int = ADOPT_AFTER,
) -> MoveState:
    """The move state after one poll of the feed's first page. `same_feed` is None when the page
    was not parsed (unchanged since the last poll): it then counts as whatever it was before."""
    if not permanent or final == requested:
        return MoveState(None, 0)
    if same_feed is False:
        return MoveState(final, 0)  # another feed: this target starts over, from nothing
    if final != state.moved_to:
        return MoveState(final, 1 if same_feed else 0)
    if same_feed is None and state.seen == 0:
        return state  # a target already found to be another feed stays untrusted
    seen = state.seen + 1
    return MoveState(final, seen, adopt=seen >= threshold)
