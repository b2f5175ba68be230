"""How a URL is shown in logs, errors and status: without the parts that may carry a secret.

Pure string work, no I/O; shared by the config (the store's location), the sinks and the store
backends, so that every place a URL is shown redacts it the same way.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redacted_url"]


def redacted_url(url: str) -> str:
    """The URL without userinfo (a password or token), query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, or the port would merge into it
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
