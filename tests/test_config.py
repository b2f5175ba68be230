"""Config validation: good configs load; each mistake names the file and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_config, parse_config, parse_duration
from syncd.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "syncd.toml"
    p.write_text(text)
    return p


def test_shipped_config_loads() -> None:
    cfg = load_config(Path(__file__).parent.parent / "config" / "syncd.toml")
    assert [f.name for f in cfg.feeds] == ["google-research"]
    assert cfg.feeds[0].interval_s == 900 and cfg.feeds[0].full_sync_every_s == 86400
    (sink,) = cfg.sinks
    assert sink.type == "file" and sink.initial == "deliver"
    assert cfg.store.path.name == "syncd.db"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (5, 5)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\n[[feeds]]\nname="b"\nurl="http://y/"\n[[feeds]]\nname="c"\nurl="http://z/"\ninterval="5x"',
            "feeds[2].interval: '5x' is not a duration",
        ),
        ('[[feeds]]\nname="a"\nurl="ftp://x/"', "feeds[0].url: 'ftp://x/' is not an http(s) URL"),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\n[[feeds]]\nname="a"\nurl="http://y/"',
            "feeds[1].name: duplicate name 'a'",
        ),
        ('[fetch]\nper_host_rate="fast"', "fetch.per_host_rate: 'fast' is not a number"),
        ("[fetch]\nspeed=1", "fetch.speed: is not a known setting"),
        (
            '[[sinks]]\nname="h"\ntype="webhook"\nurl="http://127.0.0.1:9/"',
            "sinks[0].secret_file: a webhook sink needs a secret",
        ),
        (
            '[[sinks]]\nname="h"\ntype="webhook"\nurl="http://127.0.0.1:9/"\nsecret="nope"',
            "sinks[0].secret: a webhook secret must be",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\ninitial="maybe"',
            "sinks[0].initial: 'maybe' is not",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nevents=["entry.gone"]',
            "sinks[0].events: 'entry.gone' is not one of",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nretry_schedule=["5s","soon"]',
            "sinks[0].retry_schedule[1]: 'soon' is not a duration",
        ),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\nignore_fields=["colour"]',
            "feeds[0].ignore_fields: 'colour' is not one of",
        ),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\nchanges="sometimes"',
            "feeds[0].changes: 'sometimes' is not one of 'auto', 'off'",
        ),
        ('[defaults]\nchanges="never"', "defaults.changes: 'never' is not one of"),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\nchanges_url="http://x/?since=now"',
            "feeds[0].changes_url: 'http://x/?since=now' lacks the {updated_min} placeholder",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_webhook_secret_sources(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(SECRET + "\n")
    cfg = parse_config(
        {
            "sinks": [
                {
                    "name": "a",
                    "type": "webhook",
                    "url": "http://127.0.0.1:1/",
                    "secret_file": str(secret_file),
                },
                {
                    "name": "b",
                    "type": "webhook",
                    "url": "http://127.0.0.1:1/",
                    "secret_env": "HOOK",
                },
            ]
        },
        source="t.toml",
        environ={"HOOK": SECRET},
        base=tmp_path,
    )
    assert [s.secrets for s in cfg.sinks] == [(SECRET,), (SECRET,)]
    assert all(s.initial == "skip" for s in cfg.sinks)  # webhooks skip the backfill by default
    assert SECRET not in repr(cfg)


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.secret_file: cannot read"):
        parse_config(
            {
                "sinks": [
                    {"name": "a", "type": "webhook", "url": "http://h/", "secret_file": "nope"}
                ]
            },
            source="t.toml",
            environ={},
            base=tmp_path,
        )


def test_sink_routing_policy() -> None:
    cfg = parse_config(
        {
            "feeds": [{"name": "a", "url": "http://x/"}, {"name": "b", "url": "http://y/"}],
            "sinks": [
                {
                    "name": "f",
                    "type": "file",
                    "path": "e.jsonl",
                    "feeds": ["a"],
                    "events": ["entry.created"],
                },
                {"name": "w", "type": "webhook", "url": "http://h/", "secret": SECRET},
            ],
        },
        source="t.toml",
        environ={},
        base=Path("/"),
    )
    f, w = cfg.sinks
    assert f.wants("entry.created", "a", initial=True)
    assert not f.wants("entry.updated", "a", initial=False)
    assert not f.wants("entry.created", "b", initial=False)
    assert not w.wants("entry.created", "a", initial=True)
    assert w.wants("entry.updated", "b", initial=False)


def test_changes_query_settings(tmp_path: Path) -> None:
    body = (
        '[defaults]\nchanges="off"\n[[feeds]]\nname="a"\nurl="http://x/"\n'
        '[[feeds]]\nname="b"\nurl="http://y/"\nchanges="auto"\n'
        'changes_url="http://y/c?min={updated_min}"\n'
    )
    a, b = load_config(write(tmp_path, body), environ={}).feeds
    assert a.changes == "off" and a.changes_url is None
    assert b.changes == "auto" and b.changes_url == "http://y/c?min={updated_min}"
