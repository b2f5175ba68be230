"""The one way syncd shows a URL: userinfo, query and fragment (where tokens live) never appear."""

from __future__ import annotations

import pytest

from syncd.redact import redacted_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@hooks.test:8443/in?token=x#f", "https://hooks.test:8443/in"),
        ("postgresql://syncd:secret@db.test/syncd", "postgresql://db.test/syncd"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("nats://tok@[::1]:4222", "nats://[::1]:4222"),  # an IPv6 host keeps its brackets
        ("http://hooks.test/plain", "http://hooks.test/plain"),
    ],
)
def test_secrets_never_show(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
