"""syncd's errors keep their data across process boundaries (the parser pool pickles them)."""

from __future__ import annotations

import pickle

from syncd.errors import BlockedAddressError, ConfigError, FetchError, GoneError, ParseError


def test_errors_round_trip_through_pickle() -> None:
    errors = [
        ParseError("truncated document", url="http://x/feed"),
        FetchError("HTTP 503", url="http://x/", status=503, retry_after_s=7.0),
        GoneError("HTTP 410", url="http://x/", status=410, retryable=False),
        BlockedAddressError("blocked", url="http://localhost/", retryable=False),
        ConfigError("is required", path="syncd.toml", key="feeds[0].url"),
    ]
    for err in errors:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert str(back) == str(err)
        assert back.__dict__ == err.__dict__
