"""The event envelope as stored and as delivered, the same for every backend. No I/O.

An entry's content is stored once per version (`entry_versions`), not again in each event: an
event whose entry is exactly a version's stores its envelope with `"entry":null` and names the
version (`events.version_id`); whoever reads the envelope (the outbox for sinks, the pull API,
the operator's commands) splices the version's entry back in. The result is byte for byte the
envelope built from the event itself (webhook signatures cover the body), because JSON text
composes: the entry's serialisation inside the envelope is `dump(entry)`, whatever surrounds it.
An event whose entry no stored version reproduces exactly keeps its whole envelope
(`version_id` NULL), so nothing here can change what a sink receives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syncd.errors import StoreError
from syncd.jsontext import literal
from syncd.model import EventDraft
from syncd.storage.rows import dump
from syncd.timestamps import to_text

# What a stored envelope holds in place of its entry. Inside a JSON string every `"` is escaped,
# so this text can only be the `entry` key of the envelope's `data` (no other object has one).
ENTRY_LEFT_OUT = '"entry":null'
# The columns of `entry_versions` an envelope's entry is built from.
VERSION_FIELDS = (
    "entry_id", "title", "link", "published", "updated", "authors", "categories", "summary",
    "content", "base_url",
)  # fmt: skip
# What reading an envelope needs, from events `e` left-joined to their version `v` (VERSION_JOIN).
ENVELOPE_COLUMNS = "e.payload, e.version_id, " + ", ".join(
    f"v.{c} AS v_{c}" for c in VERSION_FIELDS
)
VERSION_JOIN = "LEFT JOIN entry_versions v ON v.id = e.version_id"


def version_entry(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The envelope's `entry` as a version row (`prefix`ed column names) has it; the same keys,
    in the same order, as `syncd.events.entry_payload`."""
    return {
        "id": row[f"{prefix}entry_id"],
        "title": row[f"{prefix}title"],
        "link": row[f"{prefix}link"],
        "published": row[f"{prefix}published"],
        "updated": row[f"{prefix}updated"],
        "authors": json.loads(row[f"{prefix}authors"] or "[]"),
        "categories": json.loads(row[f"{prefix}categories"] or "[]"),
        "summary": row[f"{prefix}summary"],
        "content": row[f"{prefix}content"],
        "base_url": row[f"{prefix}base_url"],
    }


def envelope(draft: EventDraft, seq: int) -> str:
    """The event as every sink receives it, with the seq the store gave it."""
    return _dump(draft, seq, draft.data)


def _dump(draft: EventDraft, seq: int, data: Mapping[str, Any]) -> str:
    return dump(
        {
            "id": draft.id,
            "type": str(draft.type),
            "timestamp": to_text(draft.timestamp),
            "data": {"seq": seq, **data},
        }
    )


def stored(draft: EventDraft, seq: int, version: Mapping[str, Any] | None) -> tuple[str, bool]:
    """The text to store in `events.payload`, and whether it leaves the entry to `version` (a
    version row, unprefixed): only when the version reproduces the event's entry byte for byte;
    otherwise the whole envelope."""
    entry = draft.data.get("entry")
    if version is not None and entry is not None and reproduces(entry, version):
        return _dump(draft, seq, {**draft.data, "entry": None}), True
    return envelope(draft, seq), False


def reproduces(entry: Mapping[str, Any], version: Mapping[str, Any]) -> bool:
    """Exactly `dump(entry) == dump(version_entry(version))`, without dumping the large text
    fields: a dict's dump is its keys' and values' dumps joined in key order, so with the same
    keys in the same order the texts are equal if and only if every field's dumps are; and two
    `str` dump alike if and only if they are equal. Anything else is dumped, as before."""
    if tuple(entry) != _ENTRY_KEYS:
        return dump(entry) == dump(version_entry(version))
    for key, column in _ENTRY_COLUMNS:
        mine, theirs = entry[key], version[column]
        if key in _JSON_KEYS:
            theirs = json.loads(theirs or "[]")
        elif (type(mine) is str and type(theirs) is str) or (mine is None and theirs is None):
            if mine != theirs:
                return False
            continue
        if dump(mine) != dump(theirs):
            return False
    return True


# `version_entry`'s keys, in its order, and the version column each comes from.
_ENTRY_COLUMNS = tuple(("id" if c == "entry_id" else c, c) for c in VERSION_FIELDS)
_ENTRY_KEYS = tuple(k for k, _ in _ENTRY_COLUMNS)
# The fields a version stores as JSON text (`version_entry` decodes them).
_JSON_KEYS = frozenset({"authors", "categories"})


def spliced(row: Mapping[str, Any]) -> str:
    """The envelope as sent, from a row of ENVELOPE_COLUMNS: the stored text with the version's
    entry put back where the store left it out."""
    payload: str = row["payload"]
    if row["version_id"] is None:
        return payload
    return spliced_body(payload.encode(), row).decode()


def spliced_body(payload: bytes, row: Mapping[str, Any]) -> bytes:
    """`spliced` of `row` with `payload` (the stored envelope, UTF-8) as the UTF-8 bytes a sink
    receives, built as bytes: the version's long text fields are escaped on their encoded bytes
    (`syncd.jsontext`), at half the C encoder's cost, and the body is never decoded and encoded
    again. The same bytes as `spliced(...).encode()` (tests/test_jsontext.py), since a dict's
    JSON is its members' JSON joined in key order and the marker is ASCII."""
    if row["version_id"] is None:
        return payload
    if row["v_entry_id"] is None:
        # The foreign key keeps a referenced version; only a hand edit can get here.
        raise StoreError(f"an event's version {row['version_id']} is missing from entry_versions")
    parts = []
    for name, column in _SPLICED_MEMBERS:
        value = row[column]
        parts.append(name)
        if column in _SPLICED_JSON:
            parts.append(dump(json.loads(value or "[]")).encode())
        elif type(value) is str and len(value) > _LONG_TEXT:
            # "strict", as `str.encode()` is: a store cannot hold a lone surrogate anyway.
            parts.append(literal(value, errors="strict"))
        else:
            parts.append(dump(value).encode())
    parts.append(b"}")
    return payload.replace(_LEFT_OUT_BYTES, b'"entry":' + b"".join(parts), 1)


# The entry's members as `dump(version_entry(row, "v_"))` writes them: (its name with the
# separator before it, the version column).
_SPLICED_MEMBERS = tuple(
    ((b',"%s":' if i else b'{"%s":') % key.encode(), f"v_{column}")
    for i, (key, column) in enumerate(_ENTRY_COLUMNS)
)
_SPLICED_JSON = frozenset(f"v_{column}" for column in _JSON_KEYS)
# Below this, json's C encoder is quicker than a Python call (measured: it breaks even near 100).
_LONG_TEXT = 128
_LEFT_OUT_BYTES = ENTRY_LEFT_OUT.encode()


def leave_out(payload: str, version: Mapping[str, Any]) -> str | None:
    """A whole stored envelope (written before versions were named) with its entry left out to
    `version`, if the version reproduces that entry byte for byte; None otherwise."""
    whole = '"entry":' + dump(version_entry(version))
    short = payload.replace(whole, ENTRY_LEFT_OUT, 1)
    if short == payload or short.replace(ENTRY_LEFT_OUT, whole, 1) != payload:
        return None
    return short
