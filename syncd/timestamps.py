"""Feed timestamps: raw text in, aware UTC datetimes out, and the one text form syncd writes.

`parse_timestamp` reads what publishers actually put in `<updated>`, `<published>`, `<pubDate>` and
`<dc:date>`: RFC 3339 / ISO-8601 (Atom) and RFC 822 / 2822 (RSS). It keeps the whole fraction up to
microseconds, because two edits within one second must compare as different instants (DESIGN §4.5).
`format_timestamp` is the canonical text the store and event envelopes carry.

Pure functions only: no I/O, no clock, no feedparser (its `*_parsed` values drop the fraction).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["format_timestamp", "from_text", "parse_timestamp", "to_text"]

# RFC 3339 plus the ISO-8601 liberties feeds take: a space instead of "T", a comma as the decimal
# sign, no seconds, a date alone, offsets without a colon or without minutes, a missing offset.
_ISO_RE = re.compile(
    r"""
    (?P<year>\d{4}) -? (?P<month>\d{2}) -? (?P<day>\d{2})
    (?:
        [Tt\x20]
        (?P<hour>\d{2}) :? (?P<minute>\d{2})
        (?: :? (?P<second>\d{2}) (?: [.,] (?P<fraction>\d+) )? )?
    )?
    \s*
    (?P<zone> [Zz] | UTC | GMT | [+-]\d{2} (?: :?\d{2} )? )?
    """,
    re.VERBOSE | re.ASCII,
)

# Strict RFC 3339 with at most microseconds, the form of nearly every Atom timestamp: read by
# datetime.fromisoformat, ten times cheaper than the general reading, with the same result
# (tests/test_timestamps.py compares both on generated strings).
_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}

# RFC 822 §5 zones plus the few other abbreviations seen in real feeds whose meaning is not in
# doubt. An unknown name is taken as UTC: RFC 2822 §4.3 says to read it as "-0000".
_NAMED_ZONES = {
    "UT": 0,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5 * 60,
    "EDT": -4 * 60,
    "CST": -6 * 60,
    "CDT": -5 * 60,
    "MST": -7 * 60,
    "MDT": -6 * 60,
    "PST": -8 * 60,
    "PDT": -7 * 60,
    "AKST": -9 * 60,
    "AKDT": -8 * 60,
    "HST": -10 * 60,
    "CET": 1 * 60,
    "CEST": 2 * 60,
    "EET": 2 * 60,
    "EEST": 3 * 60,
    "WET": 0,
    "WEST": 1 * 60,
}

# "Tue, 10 Jun 2003 04:00:00 GMT" and its common deviations: no weekday, a full month name,
# a two-digit year, no seconds, a fraction, "+05:30" instead of "+0530", no zone at all.
_RFC822_RE = re.compile(
    r"""
    (?: [A-Za-z]+ \s*,? \s* )?
    (?P<day>\d{1,2}) [\s-]+ (?P<month>[A-Za-z]{3,}) \.? [\s-]+ (?P<year>\d{2}|\d{4})
    \s+
    (?P<hour>\d{1,2}) : (?P<minute>\d{2}) (?: : (?P<second>\d{2}) (?: [.,] (?P<fraction>\d+) )? )?
    \s*
    (?P<zone> [+-]\d{2}:?\d{2} | [A-Za-z]{1,5} )?
    """,
    re.VERBOSE | re.ASCII,
)


def parse_timestamp(raw: str | None) -> datetime | None:
    """Parse a feed timestamp into an aware UTC datetime; None when absent or unreadable.

    A timestamp without any zone is taken as UTC (feeds rarely mean local time of anyone known).
    Fractions beyond microseconds are truncated, never rounded, so the result never moves later.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    try:
        if _RFC3339_RE.fullmatch(text):
            return datetime.fromisoformat(text).astimezone(UTC)
        return _parse_iso(text) or _parse_rfc822(text)
    except (ValueError, OverflowError):
        # Out-of-range fields (month 13, day 31 of June, a year past 9999 after the offset).
        return None


def format_timestamp(dt: datetime) -> str:
    """ISO-8601 UTC text ending in "Z": 3 fraction digits for whole milliseconds, else 6.

    Raises ValueError for a naive datetime: guessing its zone would silently shift instants.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"refusing to format a naive datetime: {dt!r}")
    utc = dt.astimezone(UTC)
    # datetime's own C formatting (a 304 poll formats about five instants): zero-padded fields,
    # the fraction at the asked precision, then "+00:00", which becomes "Z".
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.isoformat(timespec=spec)[:-6] + "Z"


def _parse_iso(text: str) -> datetime | None:
    match = _ISO_RE.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    zone = parts["zone"]
    offset = _numeric_offset(zone) if zone and zone[0] in "+-" else 0
    return _assemble(
        year=int(parts["year"]),
        month=int(parts["month"]),
        day=int(parts["day"]),
        hour=int(parts["hour"] or 0),
        minute=int(parts["minute"] or 0),
        second=int(parts["second"] or 0),
        fraction=parts["fraction"],
        offset_minutes=offset,
    )


def _parse_rfc822(text: str) -> datetime | None:
    match = _RFC822_RE.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    month = _MONTHS.get(parts["month"][:3].lower())
    if month is None:
        return None
    year = int(parts["year"])
    if len(parts["year"]) == 2:
        # RFC 2822 §4.3: 00-49 are 2000-2049, 50-99 are 1950-1999.
        year += 2000 if year < 50 else 1900
    zone = parts["zone"]
    if zone is None:
        offset = 0
    elif zone[0] in "+-":
        offset = _numeric_offset(zone)
    else:
        offset = _NAMED_ZONES.get(zone.upper(), 0)
    return _assemble(
        year=year,
        month=month,
        day=int(parts["day"]),
        hour=int(parts["hour"]),
        minute=int(parts["minute"]),
        second=int(parts["second"] or 0),
        fraction=parts["fraction"],
        offset_minutes=offset,
    )


def _numeric_offset(zone: str) -> int:
    """Minutes east of UTC for "+hh", "+hhmm" or "+hh:mm"."""
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset out of range: {zone}")
    return sign * (hours * 60 + minutes)


def _assemble(
    *,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    fraction: str | None,
    offset_minutes: int,
) -> datetime:
    micro = int((fraction or "")[:6].ljust(6, "0"))
    # A leap second (:60) and the ISO end-of-day (24:00) are legal in feeds but not in datetime:
    # build from the previous representable instant and step forward.
    extra = timedelta()
    if second == 60:
        second, extra = 59, timedelta(seconds=1)
    if hour == 24 and minute == 0 and second == 0 and micro == 0:
        hour, extra = 23, extra + timedelta(hours=1)
    local = datetime(
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro,
        tzinfo=timezone(timedelta(minutes=offset_minutes)),
    )
    return (local + extra).astimezone(UTC)


def to_text(dt: datetime | None) -> str | None:
    """The stored/sent text of an optional instant (see `format_timestamp`)."""
    return format_timestamp(dt) if dt is not None else None


def from_text(text: str | None) -> datetime | None:
    """An optional instant back from the text `to_text` wrote."""
    return datetime.fromisoformat(text) if text else None
