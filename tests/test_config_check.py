"""syncd's own config checker (`syncd.configcheck`) against the pydantic models it stands in for.

Differential: for generated documents (valid and invalid values of every key the checker knows,
unknown keys, wrong shapes), the checker either declines or gives the very `Config` the models
give, and it never accepts a document the models refuse. Structural: each of its tables has the
models' keys, required keys and defaults. And the configs syncd's own tests and benches write are
accepted, so the pass that needs no pydantic is the usual one.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from syncd import configcheck
from syncd.config import Config, parse_config
from syncd.configcheck import checked_tables
from syncd.configmodels import (
    ConfigFile,
    DefaultsTable,
    FeedTable,
    FetchTable,
    HttpTable,
    SinkTable,
    StoreTable,
    WebSubTable,
)
from syncd.errors import ConfigErrors
from syncd.sinks import CheckedOptions, default_registry
from syncd.sinks.file_options import FileOptions
from syncd.sinks.options import SinkOptions
from syncd.sinks.webhook_options import WebhookOptions

SPECS: list[tuple[configcheck.Spec, type[BaseModel]]] = [
    (configcheck.STORE, StoreTable),
    (configcheck.FETCH, FetchTable),
    (configcheck.DEFAULTS, DefaultsTable),
    (configcheck.HTTP, HttpTable),
    (configcheck.WEBSUB, WebSubTable),
    (configcheck.FEED, FeedTable),
    (configcheck.SINK, SinkTable),
    (configcheck.FILE_OPTIONS, FileOptions),
    (configcheck.WEBHOOK_OPTIONS, WebhookOptions),
]
MODELS: dict[str, type[SinkOptions]] = {"file": FileOptions, "webhook": WebhookOptions}


@pytest.mark.parametrize(("spec", "model"), SPECS, ids=[m.__name__ for _, m in SPECS])
def test_each_table_has_the_models_keys_required_keys_and_defaults(
    spec: configcheck.Spec, model: type[BaseModel]
) -> None:
    assert set(spec) == set(model.model_fields)
    for key, (_, default) in spec.items():
        field = model.model_fields[key]
        if field.is_required():
            assert default is ..., key
        else:
            assert default == field.get_default(call_default_factory=True), key


def test_the_checker_knows_every_table_but_the_opml_lists_and_its_sink_types_defaults() -> None:
    assert set(configcheck.TABLES) == set(ConfigFile.model_fields) - {"feeds_from"}
    assert set(configcheck.OPTIONS) == set(MODELS)
    for kind, (spec, initial) in configcheck.OPTIONS.items():
        assert set(spec) == set(MODELS[kind].model_fields)
        assert initial == MODELS[kind].initial_default  # what the checker fills in


def plain(config: Config) -> Config:
    """`config` with each sink's options as a mapping of its type's keys: the checker gives
    CheckedOptions, the models their instance."""

    def values(kind: str, options: Any) -> dict[str, Any]:
        if isinstance(options, CheckedOptions):
            return dict(options.values)
        return {k: getattr(options, k) for k in MODELS[kind].model_fields}

    sinks = tuple(dataclasses.replace(s, options=values(s.type, s.options)) for s in config.sinks)
    return dataclasses.replace(config, sinks=sinks)


def through_models(data: dict[str, Any], base: Path) -> Config | ConfigErrors:
    try:  # an explicit registry: the models, never the checker
        return parse_config(data, source="c.toml", base=base, registry=default_registry())
    except ConfigErrors as e:
        return e


def through_checker(data: dict[str, Any], base: Path) -> Config | ConfigErrors | None:
    tables = checked_tables(data)
    if tables is None:
        return None
    try:
        return configcheck_assemble(tables, base)
    except ConfigErrors as e:
        return e


def configcheck_assemble(tables: Any, base: Path) -> Config:
    from syncd.config import _assemble

    return _assemble(tables, "c.toml", base)


# Values of every kind a key may meet: right and wrong types, edges of each range.
SCALARS = st.sampled_from(
    [
        0, 1, 2, -1, 5, 100000, True, False, 0.0, 0.0005, 0.5, 1.5, -0.5, math.inf, math.nan,
        "", "x", "30s", "250ms", "15m", "2h", "1d", "5x", " 7 s ", "-3s", "auto", "nope",
        "deliver", "skip", "file", "webhook", "entry.created", "entry.deleted", "title",
        "content", "off", "http://example.com/feed", "https://h/x?q={updated_min}", "ftp://x",
        "postgresql://u@h/db", "postgres://h", "127.0.0.1:8787", ":80", "host:99999",
        "10.0.0.0/8", "::1/128", "not-a-net", "out.jsonl", "a", "b",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", " whsec_x\n", "secret", "HOOK_SECRET",
    ]
)  # fmt: skip
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["a", "path"]), SCALARS, max_size=2),
)


def table_of(spec: configcheck.Spec, extra: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    keys = st.sampled_from([*spec, *extra, "bogus"])
    return st.dictionaries(keys, VALUES, max_size=6)


def required(spec: configcheck.Spec, kind: str = "file") -> st.SearchStrategy[dict[str, Any]]:
    """Tables that mostly hold their required keys with plausible values."""
    other = "webhook" if kind == "file" else "file"
    plausible = {
        "name": st.sampled_from(["a", "b", ""]),
        "url": st.sampled_from(["http://example.com/a", "https://example.com/b", "x"]),
        "type": st.sampled_from([kind, kind, kind, other, "exec", "", 3]),
        "path": st.sampled_from(["out.jsonl", "", 1]),
        "secret": st.sampled_from(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "nope", ""]),
    }
    keys = [k for k, (_, d) in spec.items() if d is ... or k in ("path", "secret")]
    return st.fixed_dictionaries({k: plausible[k] for k in keys if k in plausible})


def merged(base: st.SearchStrategy[dict[str, Any]], more: st.SearchStrategy[Any]) -> Any:
    return st.builds(lambda a, b: {**a, **b} if isinstance(b, dict) else b, base, more)


SINK_KEYS = (*configcheck.SINK, *configcheck.FILE_OPTIONS, *configcheck.WEBHOOK_OPTIONS)
SINKS = st.one_of(
    [
        merged(
            required({**configcheck.SINK, **options}, kind),
            st.dictionaries(st.sampled_from([*SINK_KEYS, "bogus"]), VALUES, max_size=2),
        )
        for kind, (options, _) in configcheck.OPTIONS.items()
    ]
)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "store": table_of(configcheck.STORE),
        "fetch": table_of(configcheck.FETCH),
        "defaults": table_of(configcheck.DEFAULTS),
        "http": table_of(configcheck.HTTP),
        "websub": table_of(configcheck.WEBSUB),
        "feeds": st.lists(
            merged(required(configcheck.FEED), table_of(configcheck.FEED)), max_size=3
        ),
        "sinks": st.lists(SINKS, max_size=2),
        "bogus": VALUES,
    },
)


def declines_or_agrees(data: dict[str, Any]) -> None:
    """The checker declines `data`, or gives the models' Config, or (a problem only the whole
    config shows) an error the models find too; it never accepts what they refuse."""
    base = Path("/etc/syncd")
    mine = through_checker(data, base)
    if mine is None:
        return  # declined: the models decide
    theirs = through_models(data, base)
    if isinstance(mine, ConfigErrors):  # e.g. a name used twice: parse_config then asks the
        # models, which must find a problem too
        assert isinstance(theirs, ConfigErrors), f"the models accept: {mine}"
        return
    assert not isinstance(theirs, ConfigErrors), f"accepted what the models refuse: {theirs}"
    assert plain(mine) == plain(theirs)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_the_checker_declines_or_gives_the_models_config(data: dict[str, Any]) -> None:
    declines_or_agrees(data)


@settings(max_examples=800, deadline=None)
@given(st.lists(SINKS, min_size=1, max_size=2))
def test_the_checker_declines_or_gives_the_models_sinks(sinks: list[Any]) -> None:
    declines_or_agrees({"feeds": [{"name": "a", "url": "http://example.com/a"}], "sinks": sinks})


def test_generated_documents_are_often_accepted() -> None:
    """The differential test above is only as good as what the checker accepts of it: some
    documents of each sink type it knows."""
    accepted: list[Any] = []

    @settings(max_examples=600, deadline=None, database=None)
    @given(DOCUMENTS, st.lists(SINKS, min_size=1, max_size=2))
    def count(data: dict[str, Any], sinks: list[Any]) -> None:
        for document in (data, {"sinks": sinks}):
            if (tables := checked_tables(document)) is not None:
                accepted.append(tables)

    count()
    kinds = [s.type for t in accepted for s in t.sinks if s is not None]
    assert len(accepted) >= 30
    assert kinds.count("file") >= 3 and kinds.count("webhook") >= 3, kinds


def test_a_config_of_feeds_and_a_file_sink_is_checked_without_the_models(tmp_path: Path) -> None:
    data = {
        "store": {"path": "var/s.db", "keep_versions": 3},
        "fetch": {"per_host_rate": 100000, "allow_private_networks": True, "timeout": "120s"},
        "defaults": {"interval": "auto", "ignore_fields": ["title"]},
        "feeds": [
            {"name": "a", "url": "http://example.com/a", "changes": "off", "tags": ["x"]},
            {"name": "b", "url": "http://example.com/b", "interval": "5m"},
        ],
        "sinks": [{"name": "f", "type": "file", "path": "out.jsonl", "events": ["entry.created"]}],
    }
    tables = checked_tables(data)
    assert tables is not None
    config = parse_config(data, source="c.toml", base=tmp_path)
    assert isinstance(config.sinks[0].options, CheckedOptions)
    assert plain(config) == plain(through_models(data, tmp_path))  # type: ignore[arg-type]
    assert config.sinks[0].target() == "out.jsonl"


@pytest.mark.parametrize(
    ("sink", "line"),
    [
        ({"fsync": "yes"}, "c.toml: sinks[0].fsync: 'yes' is not true or false"),
        ({"fsinc": True}, "c.toml: sinks[0].fsinc: is not a known setting (did you mean 'fsync'"),
        ({"path": ""}, "c.toml: sinks[0].path: "),
    ],
)
def test_a_bad_file_sink_option_still_fails_at_load_naming_the_key(
    tmp_path: Path, sink: dict[str, Any], line: str
) -> None:
    data = {
        "feeds": [{"name": "a", "url": "http://example.com/a"}],
        "sinks": [{"name": "f", "type": "file", "path": "out.jsonl", **sink}],
    }
    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, source="c.toml", base=tmp_path)
    assert str(caught.value).startswith(line)
    assert str(caught.value) == str(through_models(data, tmp_path))


async def test_a_file_sink_built_from_checked_options_is_the_one_the_model_builds(
    tmp_path: Path,
) -> None:
    import pickle

    from syncd.sinks import SinkContext

    data = {
        "feeds": [{"name": "a", "url": "http://example.com/a"}],
        "sinks": [{"name": "f", "type": "file", "path": "sub/../out.jsonl", "fsync": True}],
    }
    mine, theirs = (
        parse_config(data, source="c.toml", base=tmp_path),
        through_models(data, tmp_path),
    )
    assert isinstance(theirs, Config)
    assert isinstance(mine.sinks[0].options, CheckedOptions)
    assert pickle.loads(pickle.dumps(mine.sinks[0].options)) == mine.sinks[0].options
    context = SinkContext(base_dir=tmp_path)
    built = [
        default_registry().create("file", name="f", options=c.sinks[0].options, context=context)
        for c in (mine, theirs)
    ]
    assert (
        repr(built[0])
        == repr(built[1])
        == (f"FileSink(name='f', path={str(tmp_path / 'out.jsonl')!r}, fsync=True)")
    )
    for sink in built:
        await sink.aclose()
    assert mine.sinks[0].target() == theirs.sinks[0].target() == "sub/../out.jsonl"


async def test_a_webhook_sink_built_from_checked_options_is_the_one_the_model_builds(
    tmp_path: Path,
) -> None:
    from syncd.sinks import SinkContext
    from syncd.sinks.webhook import WebhookSink, session_for_webhooks

    key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    (tmp_path / "more").write_text(f"{key}\nwhsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n")
    data = {
        "feeds": [{"name": "a", "url": "http://example.com/a"}],
        "sinks": [
            {
                "name": "h",
                "type": "webhook",
                "url": "https://user:pw@example.com/hook",
                "secret": key,
                "secret_file": "more",
                "timeout": "3s",
            }
        ],
    }
    mine, theirs = (
        parse_config(data, source="c.toml", base=tmp_path),
        through_models(data, tmp_path),
    )
    assert isinstance(theirs, Config)
    assert isinstance(mine.sinks[0].options, CheckedOptions)
    assert mine.sinks[0].initial == theirs.sinks[0].initial == "skip"
    async with session_for_webhooks() as session:
        context = SinkContext(webhook_session=session, base_dir=tmp_path, timeout_s=3.0)
        built = [
            default_registry().create(
                "webhook", name="h", options=c.sinks[0].options, context=context
            )
            for c in (mine, theirs)
        ]
    assert all(isinstance(s, WebhookSink) for s in built)
    assert repr(built[0]) == repr(built[1])
    assert "secrets=<2 redacted>" in repr(built[0])
    assert mine.sinks[0].target() == theirs.sinks[0].target()
