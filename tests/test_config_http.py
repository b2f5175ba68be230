"""The [http] table and systemd credentials ($CREDENTIALS_DIRECTORY) in the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import HttpConfig, parse_config
from syncd.errors import ConfigError
from syncd.sinks import SinkContext, default_registry
from syncd.sinks.webhook import session_for_webhooks

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_http_defaults_to_loopback() -> None:
    cfg = parse_config({}, source="t.toml", base=Path("/"))
    assert cfg.http == HttpConfig(base_dir=Path("/"))
    assert cfg.http.host_port == ("127.0.0.1", 8787)
    assert cfg.http.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert cfg.http.per_feed_metrics == 1000


def test_http_table_is_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    cfg = parse_config(
        {
            "http": {
                "listen": "[::1]:9000",
                "allowed_networks": ["10.0.0.0/8"],
                "token_file": "token",
                "per_feed_metrics": 0,
            }
        },
        source="t.toml",
        base=tmp_path,
    )
    assert cfg.http.host_port == ("::1", 9000)
    assert cfg.http.token_path({}) == tmp_path / "token"
    assert cfg.http.per_feed_metrics == 0
    off = parse_config({"http": {"listen": ""}}, source="t.toml", base=tmp_path)
    assert off.http.listen == ""


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"listen": "8787"}, "http.listen: '8787' is not host:port"),
        ({"listen": "localhost:http"}, "http.listen: 'localhost:http' is not host:port"),
        ({"allowed_networks": ["lan"]}, "http.allowed_networks: 'lan' is not an IP network"),
        ({"per_feed_metrics": -1}, "http.per_feed_metrics: -1 is not a number >= 0"),
        ({"port": 1}, "http.port: is not a known setting"),
    ],
)
def test_http_mistakes_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"http": table}, source="t.toml", base=Path("/"))
    assert f"t.toml: {message}" in str(info.value)


async def test_secret_file_in_the_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    sink = {
        "name": "a",
        "type": "webhook",
        "url": "http://127.0.0.1:1/",
        "secret_file": "$CREDENTIALS_DIRECTORY/hook-secret",
    }
    registry = default_registry()
    async with session_for_webhooks() as session:
        for form in ("$CREDENTIALS_DIRECTORY", "${CREDENTIALS_DIRECTORY}"):
            cfg = parse_config(
                {"sinks": [{**sink, "secret_file": f"{form}/hook-secret"}]},
                source="t.toml",
                base=Path("/nowhere"),
            )
            (sc,) = cfg.sinks
            context = SinkContext(
                webhook_session=session,
                base_dir=cfg.base_dir,
                environ={"CREDENTIALS_DIRECTORY": str(tmp_path)},
            )
            built = registry.create(sc.type, name=sc.name, options=sc.options, context=context)
            assert "secrets=<1 redacted>" in repr(built)
        # Loading the config needs no credentials (read-only commands); building the sink does.
        (sc,) = parse_config({"sinks": [sink]}, source="t.toml", base=tmp_path).sinks
        with pytest.raises(ConfigError) as info:
            registry.create(
                sc.type,
                name=sc.name,
                options=sc.options,
                context=SinkContext(webhook_session=session, environ={}),
            )
    assert "sinks['a'].secret_file: uses $CREDENTIALS_DIRECTORY, which is not set" in str(
        info.value
    )


def test_token_file_in_the_credentials_directory(tmp_path: Path) -> None:
    http = parse_config(
        {"http": {"token_file": "${CREDENTIALS_DIRECTORY}/token"}}, source="t.toml", base=tmp_path
    ).http
    assert http.token_path({"CREDENTIALS_DIRECTORY": "/run/c"}) == Path("/run/c/token")
    with pytest.raises(ConfigError, match=r"http\.token_file: uses \$CREDENTIALS_DIRECTORY"):
        http.token_path({})
