"""Config validation: good configs load; each mistake names the file and key path, every mistake
of a file is reported at once, unknown keys anywhere (sinks included) are refused with a "did you
mean", relative paths are the config file's, and secrets are read only when a sink is built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.config import config_schema, load_config, parse_config, parse_duration
from syncd.errors import ConfigError
from syncd.validation import ConfigErrors

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
        ("[fetch]\ntimout=1", "fetch.timout: is not a known setting (did you mean 'timeout'?)"),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nevnets=["entry.created"]',
            "sinks[0].evnets: is not a known setting (did you mean 'events'?)",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nintial="deliver"',
            "sinks[0].intial: is not a known setting (did you mean 'initial'?)",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nmax_inflight=1',
            "sinks[0].max_inflight: is not a known setting (did you mean 'max_in_flight'?)",
        ),
        (
            '[[sinks]]\nname="h"\ntype="webhook"\nurl="http://h/"\nsecret_env="X"\nsecrte="y"',
            "sinks[0].secrte: is not a known setting (did you mean 'secret'?)",
        ),
        (
            '[[sinks]]\nname="e"\ntype="exec"\ncommand=["x"]\ncwdd="y"',
            "sinks[0].cwdd: is not a known setting (did you mean 'cwd'?)",
        ),
        (
            '[[sinks]]\nname="f"\ntype="fiel"\npath="x"',
            "sinks[0].type: unknown sink type 'fiel'; known types: exec, file, nats, redis, webhook"
            " (did you mean 'file'?)",
        ),
        ('[[sinks]]\nname="f"\ntype="file"\npath="x"\nfsync="yes"', "sinks[0].fsync: 'yes' is not"),
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
            "sinks[0].events[0]: 'entry.gone' is not one of",
        ),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nretry_schedule=["5s","soon"]',
            "sinks[0].retry_schedule[1]: 'soon' is not a duration",
        ),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\nignore_fields=["colour"]',
            "feeds[0].ignore_fields[0]: 'colour' is not one of",
        ),
        (
            '[[feeds]]\nname="a"\nurl="http://x/"\nchanges="sometimes"',
            "feeds[0].changes: 'sometimes' is not one of 'auto' or 'off'",
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
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[sinks]]\nname="f"\ntype="file"\npath="x"\ntimeout=nan', "sinks[0].timeout: nan is"),
        ('[[sinks]]\nname="f"\ntype="file"\npath="x"\ntimeout=inf', "sinks[0].timeout: inf is"),
        (
            '[[sinks]]\nname="f"\ntype="file"\npath="x"\nretry_schedule=["5s", 1e300]',
            "sinks[0].retry_schedule[1]: 1e+300 is",
        ),
        ('[[feeds]]\nname="a"\nurl="http://x/"\ninterval=nan', "feeds[0].interval: nan is"),
        ('[defaults]\nmax_backoff="99999999999d"', "defaults.max_backoff: '99999999999d' is"),
        ("[store]\nlease_seconds=inf", "store.lease_seconds: inf is"),
    ],
)
def test_a_duration_no_clock_can_add_is_refused_at_load(
    tmp_path: Path, body: str, message: str
) -> None:
    """NaN, infinity and durations of thousands of years were accepted, and then every delivery
    (a lease is `timeout` from now) or poll (the next one is `interval` from now) of that sink or
    feed raised in datetime arithmetic, over and over. Refused at load instead, one line each."""
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert "at most 100 years" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_every_error_of_a_file_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[fetch]\ntimout="3s"\n'
        '[[feeds]]\nname="a"\nurl="ftp://x/"\n'
        '[[sinks]]\nname="f"\ntype="file"\npath="x"\nevnets=["entry.created"]\n'
        '[[sinks]]\nname="g"\ntype="file"\n',
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}: fetch.timout: is not a known setting (did you mean 'timeout'?)",
        f"{path}: feeds[0].url: 'ftp://x/' is not an http(s) URL",
        f"{path}: sinks[0].evnets: is not a known setting (did you mean 'events'?)",
        f"{path}: sinks[1].path: is required",
    ]


def test_relative_paths_are_the_config_files(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "syncd.toml"
    path.write_text('[store]\npath = "db/syncd.db"\n')
    monkeypatch.chdir("/")
    assert load_config(Path(os.path.relpath(path))).store.path == tmp_path / "etc/db/syncd.db"


def test_secrets_are_not_read_when_loading(tmp_path: Path) -> None:
    # A read-only command loads the config without the service's credential or environment.
    cfg = parse_config(
        {
            "sinks": [
                {"name": "a", "type": "webhook", "url": "http://h/", "secret_file": "missing"},
                {"name": "b", "type": "webhook", "url": "http://h/", "secret_env": "UNSET"},
            ]
        },
        source="t.toml",
        base=tmp_path,
    )
    assert [s.name for s in cfg.sinks] == ["a", "b"]
    assert all(s.initial == "skip" for s in cfg.sinks)  # webhooks skip the backfill by default


def test_schema_describes_every_table_and_sink_type() -> None:
    schema = config_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "store",
        "fetch",
        "defaults",
        "feeds",
        "feeds_from",
        "sinks",
        "http",
        "websub",
    }
    sink_items = schema["properties"]["sinks"]["items"]
    kinds = {ref["$ref"].rsplit("/", 1)[-1] for ref in sink_items["oneOf"]}
    # the in-tree broker sinks are plugins (entry points), listed like the built-ins
    assert kinds == {
        "ExecSinkTable",
        "FileSinkTable",
        "WebhookSinkTable",
        "NatsSinkTable",
        "RedisSinkTable",
    }
    nats = schema["$defs"]["NatsSinkTable"]
    assert nats["additionalProperties"] is False
    assert {"url", "subject", "stream"} <= set(nats["properties"])
    webhook = schema["$defs"]["WebhookSinkTable"]
    assert webhook["additionalProperties"] is False
    assert {"url", "secret_file", "events", "max_in_flight"} <= set(webhook["properties"])


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
    a, b = load_config(write(tmp_path, body)).feeds
    assert a.changes == "off" and a.changes_url is None
    assert b.changes == "auto" and b.changes_url == "http://y/c?min={updated_min}"


def test_websub_table(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "websub": {
                "public_url": "https://syncd.example.org/",
                "lease": "2d",
                "websub_poll_interval": "12h",
                "max_pushes_per_minute": 10,
            },
            "feeds": [
                {"name": "a", "url": "http://h/a"},
                {"name": "b", "url": "http://h/b", "websub": False},
            ],
        },
        source="t.toml",
        base=tmp_path,
    )
    assert cfg.websub.public_url == "https://syncd.example.org"
    assert cfg.websub.lease_s == 172800.0 and cfg.websub.active
    assert cfg.websub.poll_interval_s == 43200.0 and cfg.websub.max_pushes_per_minute == 10
    assert [f.websub for f in cfg.feeds] == [True, False]
    with pytest.raises(ConfigErrors) as e:
        parse_config(
            {"websub": {"public_url": "ftp://x", "alow_insecure_hubs": True}},
            source="t.toml",
            base=tmp_path,
        )
    text = str(e.value)
    assert "websub.public_url: 'ftp://x' is not an http(s) URL" in text
    assert "websub.alow_insecure_hubs: is not a known setting" in text
    assert "did you mean 'allow_insecure_hubs'" in text


def test_feeds_setting_the_same_options_share_them_and_each_problem_names_its_feed(
    tmp_path: Path,
) -> None:
    """Feeds that set the same options are derived once (a million-feed config), yet each feed
    gets what its own table says, and a bad combination is reported for every feed that has it."""
    tables = [
        '[[feeds]]\nname = "a"\nurl = "https://a.test/f"\n',
        '[[feeds]]\nname = "b"\nurl = "https://b.test/f"\ninterval = "1h"\ntags = ["x"]\n',
        '[[feeds]]\nname = "c"\nurl = "https://c.test/f"\n',
        '[[feeds]]\nname = "d"\nurl = "https://d.test/f"\ninterval = "1h"\n',
    ]
    config = load_config(write(tmp_path, '[defaults]\ninterval = "5m"\n' + "".join(tables)))
    by_name = {f.name: f for f in config.feeds}
    assert [by_name[n].interval_s for n in "abcd"] == [300.0, 3600.0, 300.0, 3600.0]
    assert [by_name[n].tags for n in "abcd"] == [(), ("x",), (), ()]
    bad = '\nmin_interval = "2h"\nmax_interval = "1h"\n'
    # a and c set the same (bad) options: one derivation, two errors, each naming its table.
    text = "".join(t.rstrip("\n") + bad for t in (tables[0], tables[2])) + tables[1]
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, text))
    keys = [e.key for e in info.value.errors]
    assert keys == ["feeds[0].max_interval", "feeds[1].max_interval"]
