"""The sink registry: built-ins, registered types, entry-point plugins, and clear errors."""

from __future__ import annotations

import base64
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import syncd.sinks
from syncd.errors import ConfigError
from syncd.model import OutboundEvent, SendOutcome
from syncd.sinks import (
    Sink,
    SinkContext,
    SinkRegistry,
    default_registry,
)
from syncd.sinks.file import FileSink
from syncd.sinks.webhook import WebhookSink, session_for_webhooks


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


class MemorySink:
    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dict(options)
        self.sent: list[OutboundEvent] = []

    async def send(self, event: OutboundEvent) -> SendOutcome:
        self.sent.append(event)
        return SendOutcome(ok=True)

    async def aclose(self) -> None:
        return None


def memory_factory(*, name: str, options: Mapping[str, Any], context: SinkContext) -> Sink:
    return MemorySink(name, options)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with session_for_webhooks() as s:
        yield s


@pytest.fixture
def registry() -> SinkRegistry:
    # Entry points off: these tests must not depend on what happens to be installed.
    return SinkRegistry(syncd.sinks.builtin_sink_factories(), entry_point_group=None)


async def test_builtin_file_sink_resolves_relative_to_base_dir(registry, tmp_path: Path) -> None:
    sink = registry.create(
        "file",
        name="archive",
        options={"path": "var/events.jsonl", "fsync": True},
        context=SinkContext(base_dir=tmp_path),
    )
    assert isinstance(sink, FileSink)
    assert sink.name == "archive" and sink.path == tmp_path / "var" / "events.jsonl"
    try:
        event = OutboundEvent(id="evt_1", seq=1, type="entry.created", body=b'{"id":"evt_1"}')
        assert (await sink.send(event)).ok
    finally:
        await sink.aclose()
    assert sink.path.read_bytes() == b'{"id":"evt_1"}\n'


async def test_builtin_webhook_sink_uses_the_shared_session(registry, session) -> None:
    sink = registry.create(
        "webhook",
        name="hook",
        options={"url": "http://127.0.0.1:9000/hook", "secret": secret(), "secrets": [secret()]},
        context=SinkContext(webhook_session=session, timeout_s=3),
    )
    assert isinstance(sink, WebhookSink)
    assert sink.name == "hook"
    assert "secrets=<2 redacted>" in repr(sink) and "timeout_s=3" in repr(sink)
    await sink.aclose()
    assert not session.closed


async def test_webhook_secrets_are_read_when_built(registry, session, tmp_path: Path) -> None:
    inline, from_file, from_env = secret(), secret(), secret()
    (tmp_path / "hook-secret").write_text(f"{from_file}\n{inline}\n")
    options = {"url": "http://h/", "secret": inline, "secret_file": "hook-secret"}
    context = SinkContext(webhook_session=session, base_dir=tmp_path, environ={"S": from_env})
    sink = registry.create("webhook", name="hook", options=options, context=context)
    assert "secrets=<2 redacted>" in repr(sink)  # the repeated inline one counts once
    sink = registry.create(
        "webhook", name="hook", options={**options, "secret_env": "S"}, context=context
    )
    assert "secrets=<3 redacted>" in repr(sink)
    with pytest.raises(ConfigError) as info:
        registry.create(
            "webhook",
            name="hook",
            options={"url": "http://h/", "secret_env": "S"},
            context=SinkContext(webhook_session=session, environ={}),
        )
    assert str(info.value) == "sinks['hook'].secret_env: environment variable S is not set"


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"secret": "whsec_AAAA"}, "url", "is required"),
        ({"url": "ftp://x/", "secret": "whsec_AAAA"}, "url", "is not an http(s) URL"),
        ({"url": "http://x/"}, "secret_file", "needs a secret"),
        ({"url": "http://x/", "secret": "plain"}, "secret", 'must be "whsec_"'),
        ({"url": "http://x/", "secrets": "whsec_AAAA"}, "secrets", "is not a list"),
        ({"url": "http://x/", "secrets": 3}, "secrets", "is not a list"),
        ({"url": "http://x/", "secret": "whsec_AAAA", "secrte": 3}, "secrte", "'secret'"),
        ({"url": "http://x/", "secret_file": "/nonexistent"}, "secret_file", "cannot read"),
    ],
)
async def test_webhook_option_errors_name_the_sink_and_key(
    registry, session, options: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        registry.create(
            "webhook", name="hook", options=options, context=SinkContext(webhook_session=session)
        )
    assert info.value.key == f"sinks['hook'].{key}"
    assert message in str(info.value)
    secret_value = options.get("secret")
    if secret_value:
        assert secret_value not in str(info.value)


def test_file_option_errors(registry) -> None:
    with pytest.raises(ConfigError, match=r"sinks\['archive'\]\.path"):
        registry.create("file", name="archive", options={}, context=SinkContext())
    with pytest.raises(ConfigError, match=r"sinks\['archive'\]\.fsync"):
        registry.create(
            "file", name="archive", options={"path": "x", "fsync": "yes"}, context=SinkContext()
        )


def test_unknown_type_lists_the_known_ones(registry) -> None:
    with pytest.raises(ConfigError) as info:
        registry.create("kafka", name="stream", options={}, context=SinkContext())
    assert str(info.value) == (
        "sinks['stream'].type: unknown sink type 'kafka'; known types: exec, file, webhook"
    )
    with pytest.raises(ConfigError, match="known types: exec, file, webhook"):
        registry.factory_for("kafka")


def test_a_registered_custom_type_is_used(registry) -> None:
    registry.register("memory", memory_factory)
    assert registry.known_types() == ("exec", "file", "memory", "webhook")
    sink = registry.create("memory", name="m", options={"size": 3}, context=SinkContext())
    assert isinstance(sink, MemorySink) and sink.name == "m" and sink.options == {"size": 3}


def test_registering_a_taken_name_needs_replace(registry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register("file", memory_factory)
    registry.register("file", memory_factory, replace=True)
    assert isinstance(
        registry.create("file", name="f", options={}, context=SinkContext()), MemorySink
    )
    with pytest.raises(ValueError):
        registry.register("", memory_factory)


def test_registries_are_independent() -> None:
    one, two = default_registry(), default_registry()
    one.register("memory", memory_factory)
    assert "memory" in one.known_types()
    assert "memory" not in two.known_types()


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install a throwaway distribution with two `syncd.sinks` entry points on sys.path."""
    group = f"syncd.sinks.test_{os.getpid()}_{id(tmp_path)}"  # a group of our own: no collisions
    good, bad = f"good_sink_plugin_{id(tmp_path)}", f"bad_sink_plugin_{id(tmp_path)}"
    (tmp_path / f"{good}.py").write_text(
        textwrap.dedent(
            """
            from syncd.model import SendOutcome

            class EchoSink:
                def __init__(self, name):
                    self.name = name

                async def send(self, event):
                    return SendOutcome(ok=True)

                async def aclose(self):
                    return None

            def create_sink(*, name, options, context):
                return EchoSink(name)
            """
        )
    )
    (tmp_path / f"{bad}.py").write_text("raise ImportError('needs the nats extra')\n")
    info = tmp_path / "syncd_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{group}]\necho = {good}:create_sink\nnats = {bad}:create_sink\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in (good, bad):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return group


async def test_entry_point_plugins_load_lazily(plugin_dist: str) -> None:
    registry = SinkRegistry(syncd.sinks.builtin_sink_factories(), entry_point_group=plugin_dist)
    assert registry.known_types() == ("echo", "exec", "file", "nats", "webhook")
    # Listing does not import anything.
    assert not any(m.startswith(("good_sink_plugin", "bad_sink_plugin")) for m in sys.modules)

    sink = registry.create("echo", name="e", options={}, context=SinkContext())
    assert sink.name == "e"
    assert (await sink.send(OutboundEvent(id="x", seq=1, type="t", body=b"{}"))).ok
    assert not any(m.startswith("bad_sink_plugin") for m in sys.modules)

    # A broken plugin is a clear config error, and the others keep working.
    with pytest.raises(ConfigError, match=r"sink type 'nats' .* failed to load: ImportError"):
        registry.create("nats", name="n", options={}, context=SinkContext())
    assert registry.create("echo", name="e2", options={}, context=SinkContext()).name == "e2"


def test_builtins_win_over_a_same_named_plugin(plugin_dist: str, tmp_path: Path) -> None:
    registry = SinkRegistry({"echo": memory_factory}, entry_point_group=plugin_dist)
    assert isinstance(
        registry.create("echo", name="e", options={}, context=SinkContext()), MemorySink
    )


def test_schema_models_load_every_plugin_and_name_the_broken_ones(plugin_dist: str) -> None:
    registry = SinkRegistry(syncd.sinks.builtin_sink_factories(), entry_point_group=plugin_dist)
    models, problems = registry.typed_models()
    # the plain-callable plugin has no model to list; the broken one is one line, not a crash
    assert set(models) == {"exec", "file", "webhook"}
    assert len(problems) == 1
    assert "sink type 'nats'" in problems[0] and "ImportError" in problems[0]
    assert registry.create("echo", name="e", options={}, context=SinkContext()).name == "e"
