"""syncd.timestamps: the raw feed strings syncd must read, and the one text form it writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.timestamps import format_timestamp, parse_timestamp


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The seed's first entry: milliseconds and a -07:00 offset.
        ("2017-07-21T12:45:12.144-07:00", utc(2017, 7, 21, 19, 45, 12, 144_000)),
        ("2017-07-21T12:00:00.000-07:00", utc(2017, 7, 21, 19, 0, 0)),
        ("2003-12-13T18:30:02Z", utc(2003, 12, 13, 18, 30, 2)),
        ("2003-12-13t18:30:02z", utc(2003, 12, 13, 18, 30, 2)),
        ("2003-12-13T18:30:02.5Z", utc(2003, 12, 13, 18, 30, 2, 500_000)),
        ("2003-12-13T18:30:02.123456+00:00", utc(2003, 12, 13, 18, 30, 2, 123_456)),
        # Beyond microseconds: truncated, never rounded up into the next microsecond.
        ("2003-12-13T18:30:02.123456789Z", utc(2003, 12, 13, 18, 30, 2, 123_456)),
        ("2003-12-13T18:30:02,25+01:00", utc(2003, 12, 13, 17, 30, 2, 250_000)),
        ("2003-12-13T18:30:02+0530", utc(2003, 12, 13, 13, 0, 2)),
        ("2003-12-13T18:30:02-03", utc(2003, 12, 13, 21, 30, 2)),
        ("2003-12-13 18:30:02", utc(2003, 12, 13, 18, 30, 2)),  # no zone: UTC
        ("2003-12-13T18:30Z", utc(2003, 12, 13, 18, 30)),
        ("2003-12-13", utc(2003, 12, 13)),
        ("20031213T183002Z", utc(2003, 12, 13, 18, 30, 2)),
        ("  2003-12-13T18:30:02Z\n", utc(2003, 12, 13, 18, 30, 2)),
        # An offset that crosses midnight and a year boundary.
        ("2003-12-31T23:30:00-01:00", utc(2004, 1, 1, 0, 30)),
        # A leap second and ISO's end-of-day are instants too.
        ("2016-12-31T23:59:60Z", utc(2017, 1, 1)),
        ("2003-12-13T24:00:00Z", utc(2003, 12, 14)),
    ],
)
def test_parse_iso8601(raw: str, expected: datetime) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tue, 10 Jun 2003 04:00:00 GMT", utc(2003, 6, 10, 4)),
        ("Tue, 10 Jun 2003 04:00:00 UT", utc(2003, 6, 10, 4)),
        ("Tue, 10 Jun 2003 04:00:00 UTC", utc(2003, 6, 10, 4)),
        ("Tue, 10 Jun 2003 04:00:00 EST", utc(2003, 6, 10, 9)),
        ("Tue, 10 Jun 2003 04:00:00 EDT", utc(2003, 6, 10, 8)),
        ("Tue, 10 Jun 2003 04:00:00 PDT", utc(2003, 6, 10, 11)),
        ("Tue, 10 Jun 2003 04:00:00 pst", utc(2003, 6, 10, 12)),
        ("Tue, 10 Jun 2003 04:00:00 +0200", utc(2003, 6, 10, 2)),
        ("Tue, 10 Jun 2003 04:00:00 -0330", utc(2003, 6, 10, 7, 30)),
        ("Tue, 10 Jun 2003 04:00:00 +02:00", utc(2003, 6, 10, 2)),
        ("Tue, 10 Jun 2003 04:00:00 -0000", utc(2003, 6, 10, 4)),
        ("Tue, 10 Jun 2003 04:00:00", utc(2003, 6, 10, 4)),  # no zone: UTC
        ("Tue, 10 Jun 2003 04:00:00 XYZ", utc(2003, 6, 10, 4)),  # unknown: -0000 (RFC 2822)
        ("10 Jun 2003 04:00:00 GMT", utc(2003, 6, 10, 4)),
        ("Tue,10 Jun 2003 04:00 GMT", utc(2003, 6, 10, 4)),
        ("Tuesday, 10 June 2003 04:00:00 GMT", utc(2003, 6, 10, 4)),
        ("Tue, 1 Jun 03 04:00:00 GMT", utc(2003, 6, 1, 4)),
        ("Tue, 1 Jun 99 04:00:00 GMT", utc(1999, 6, 1, 4)),
        ("Tue, 10 Jun 2003 04:00:00.250 GMT", utc(2003, 6, 10, 4, 0, 0, 250_000)),
        ("Wed, 31 Dec 2003 23:30:00 -0100", utc(2004, 1, 1, 0, 30)),
    ],
)
def test_parse_rfc822(raw: str, expected: datetime) -> None:
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "yesterday",
        "2003-13-01T00:00:00Z",  # month 13
        "2003-02-30T00:00:00Z",  # 30 February
        "2003-12-13T25:00:00Z",
        "2003-12-13T18:30:02+25:00",  # offset out of range
        "Tue, 31 Jun 2003 04:00:00 GMT",
        "Tue, 10 Foo 2003 04:00:00 GMT",
        "2003-12-13T18:30:02Z trailing words",
    ],
)
def test_unparseable_is_none(raw: str | None) -> None:
    assert parse_timestamp(raw) is None


def test_one_millisecond_apart_are_distinct_instants() -> None:
    first = parse_timestamp("2017-07-21T12:45:12.144-07:00")
    second = parse_timestamp("2017-07-21T12:45:12.145-07:00")
    assert first is not None and second is not None
    assert first != second
    assert second - first == timedelta(milliseconds=1)
    assert format_timestamp(first) != format_timestamp(second)


def test_same_instant_in_different_offsets_is_equal() -> None:
    assert parse_timestamp("2017-07-21T12:45:12.144-07:00") == parse_timestamp(
        "2017-07-21T19:45:12.144Z"
    )


def test_format_whole_milliseconds_uses_three_digits() -> None:
    assert format_timestamp(utc(2017, 7, 21, 19, 45, 12, 144_000)) == "2017-07-21T19:45:12.144Z"
    assert format_timestamp(utc(2017, 7, 21, 19, 45, 12)) == "2017-07-21T19:45:12.000Z"


def test_format_sub_millisecond_uses_six_digits() -> None:
    assert format_timestamp(utc(2017, 7, 21, 19, 45, 12, 144_001)) == "2017-07-21T19:45:12.144001Z"
    assert format_timestamp(utc(2017, 7, 21, 19, 45, 12, 1)) == "2017-07-21T19:45:12.000001Z"


def test_format_converts_to_utc() -> None:
    pacific = timezone(timedelta(hours=-7))
    local = datetime(2017, 7, 21, 12, 45, 12, 144_000, tzinfo=pacific)
    assert format_timestamp(local) == "2017-07-21T19:45:12.144Z"


def test_format_pads_small_years() -> None:
    assert format_timestamp(utc(999, 1, 2, 3, 4, 5)) == "0999-01-02T03:04:05.000Z"


def test_format_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2017, 7, 21, 19, 45, 12))


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_then_parse_round_trips(dt: datetime) -> None:
    assert parse_timestamp(format_timestamp(dt)) == dt


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
    ),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_offsets_name_the_same_instant(dt: datetime, offset_minutes: int) -> None:
    local = dt.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    raw = local.replace(tzinfo=None).isoformat(timespec="microseconds")
    assert parse_timestamp(f"{raw}{sign}{hours:02d}:{minutes:02d}") == dt


def _general_reading(text: str) -> datetime | None:
    """parse_timestamp without its strict RFC 3339 shortcut."""
    from syncd import timestamps

    try:
        return timestamps._parse_iso(text) or timestamps._parse_rfc822(text)
    except (ValueError, OverflowError):
        return None


def _two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    """Mostly in range, sometimes anything two digits can say (month 13, hour 24, minute 60)."""
    return st.one_of(st.integers(low, high), st.integers(0, 99)).map(lambda n: f"{n:02d}")


@settings(max_examples=500)
@given(
    year=st.integers(min_value=0, max_value=9999).map(lambda n: f"{n:04d}"),
    month=_two_digits(1, 12),
    day=_two_digits(1, 31),
    hour=_two_digits(0, 23),
    minute=_two_digits(0, 59),
    second=_two_digits(0, 59),
    fraction=st.none() | st.text(alphabet="0123456789", min_size=1, max_size=6),
    zone=st.just("Z")
    | st.builds(
        lambda sign, h, m: f"{sign}{h}:{m}",
        st.sampled_from("+-"),
        _two_digits(0, 23),
        _two_digits(0, 59),
    ),
)
def test_the_rfc3339_shortcut_reads_like_the_general_reading(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    fraction: str | None,
    zone: str,
) -> None:
    # Every field drawn out of range too (month 13, day 31 of June, hour 24, minute 60, offset
    # 99:99, year 0): both readings must refuse the same strings and agree on the others.
    text = (
        f"{year}-{month}-{day}T{hour}:{minute}:{second}{'.' + fraction if fraction else ''}{zone}"
    )
    parsed = parse_timestamp(text)
    assert parsed == _general_reading(text)
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2017-07-21T12:45:00.000-07:00",  # Blogger
        "2016-12-31T23:59:60Z",  # a leap second
        "2017-07-21T24:00:00Z",  # ISO end of day
        "2017-07-21T12:60:00Z",
        "2017-13-01T00:00:00Z",
        "2017-06-31T00:00:00Z",
        "2016-02-29T00:00:00+01:00",
        "2017-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59.999999-00:01",
        "2017-07-21T12:45:00.5+23:59",
        "2017-07-21T12:45:00+24:00",
        "2017-07-21T12:45:00.1234567Z",
        " 2017-07-21T12:45:00Z\n",
    ],
)
def test_the_rfc3339_shortcut_at_its_edges(text: str) -> None:
    assert parse_timestamp(text) == _general_reading(text.strip())


def _format_timestamp_by_fields(dt: datetime) -> str:
    """The former `format_timestamp`, field by field: the reference for the isoformat one."""
    utc = dt.astimezone(UTC)
    head = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond % 1000 == 0:
        return f"{head}.{utc.microsecond // 1000:03d}Z"
    return f"{head}.{utc.microsecond:06d}Z"


@settings(max_examples=1000)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
        ),
    ),
    st.booleans(),
)
def test_format_timestamp_writes_what_the_field_by_field_formatting_wrote(
    dt: datetime, whole_ms: bool
) -> None:
    if whole_ms:  # half the instants on whole milliseconds, as the store's bookkeeping writes
        dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    assert format_timestamp(dt) == _format_timestamp_by_fields(dt)
