"""The OpenAPI 3.1 document of the pull API (served at /api/openapi.json). Data only: it must
describe exactly what syncd.web.api answers, and a property-based test checks that it does."""

from __future__ import annotations

from typing import Any

from syncd import __version__


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


_ERRORS = {
    "400": _json(
        "Error", "a parameter or the search query is invalid (code: bad_parameter, bad_query)"
    ),
    "401": _json("Error", "a bearer token is required"),
    "403": _json("Error", "the client address is not allowed, or the API needs a token"),
    "404": _json("Error", "unknown feed or entry (code: unknown_feed, unknown_entry)"),
    "410": _json(
        "Error",
        "the cursor is behind pruned events (code: cursor_gone): restart from `restart_from`",
    ),
    "503": _json("Error", "the store cannot be read (code: store_unavailable)"),
}

_CURSOR = _param("after", {"type": "integer", "minimum": 0}, "return events with seq > after")
_FEED = _param("feed", {"type": "string"}, "only this feed's events (its configured name)")
_TYPE = _param(
    "type",
    {"type": "string", "enum": ["entry.created", "entry.updated", "entry.deleted"]},
    "only events of this type",
)
_ENTRY_PROPERTIES: dict[str, Any] = {
    "feed": {"type": "string"},
    "entry_id": {"type": "string"},
    "title": {"type": ["string", "null"]},
    "link": {"type": ["string", "null"]},
    "published": {"type": ["string", "null"]},
    "updated": {"type": ["string", "null"]},
    "authors": {"type": "array"},
    "categories": {"type": "array", "items": {"type": "string"}},
    "summary": {"type": ["string", "null"]},
    "content": {"type": ["string", "null"]},
    "links": {"type": "array"},
    "first_seen": {"type": ["string", "null"]},
    "last_seen": {"type": ["string", "null"]},
    "deleted_at": {"type": ["string", "null"]},
    "deleted_reason": {"type": ["string", "null"]},
    "revision": {"type": "integer"},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "syncd pull API",
        "version": __version__,
        "description": "Read the mirror and its change events. Events come in seq order; a "
        "reader that always passes the `next` it was given never misses an event and never "
        "sees one twice. Needs a bearer token whenever the server listens beyond loopback.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "code"],
                "properties": {
                    "error": {"type": "string"},
                    "code": {"type": "string"},
                    "restart_from": {"type": "integer"},
                },
            },
            "Envelope": {
                "type": "object",
                "required": ["id", "type", "timestamp", "data"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "timestamp": {"type": "string"},
                    "data": {
                        "type": "object",
                        "required": ["seq"],
                        "properties": {"seq": {"type": "integer"}},
                    },
                },
            },
            "EventPage": {
                "type": "object",
                "required": ["events", "next"],
                "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Envelope"}},
                    "next": {"type": "integer", "minimum": 0},
                },
            },
            "Entry": {
                "type": "object",
                "required": ["feed", "entry_id"],
                "properties": _ENTRY_PROPERTIES,
            },
            "EntryList": {
                "type": "object",
                "required": ["entries", "next"],
                "properties": {
                    "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
                    "next": {
                        "type": ["string", "null"],
                        "description": "pass as after= for the next page; null: no more",
                    },
                },
            },
            "EntryWithVersions": {
                "type": "object",
                "required": ["feed", "entry_id", "versions"],
                "properties": {**_ENTRY_PROPERTIES, "versions": {"type": "array"}},
            },
        },
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/api/events": {
            "get": {
                "summary": "Events after a cursor, oldest first",
                "parameters": [
                    _CURSOR,
                    _param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "at most this many events (default 100)",
                    ),
                    _FEED,
                    _TYPE,
                    _param(
                        "wait",
                        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$"},
                        "long-poll: hold the request up to this long (e.g. 30s; longer than "
                        "120s is cut to 120s) until an event arrives",
                    ),
                ],
                "responses": {"200": _json("EventPage", "events and the next cursor"), **_ERRORS},
            }
        },
        "/api/events/stream": {
            "get": {
                "summary": "Server-Sent Events: every event after the cursor, then live",
                "description": "Each event is sent with `id:` its seq and `event:` its type; a "
                "client reconnecting with Last-Event-ID resumes after it.",
                "parameters": [_CURSOR, _FEED, _TYPE],
                "responses": {
                    "200": {
                        "description": "an endless text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/entries": {
            "get": {
                "summary": "Entries, newest first",
                "parameters": [
                    _param("feed", {"type": "string"}, "only this feed's entries"),
                    _param("q", {"type": "string"}, "full-text query (FTS5 syntax)"),
                    _param(
                        "since",
                        {"type": "string"},
                        "published at or after: an ISO date/time, or a duration back (7d)",
                    ),
                    _param("include_deleted", {"type": "boolean"}, "deleted entries too"),
                    _param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 50"
                    ),
                    _param(
                        "after",
                        {"type": "string"},
                        "the `next` of the previous page: continue after its last entry",
                    ),
                ],
                "responses": {"200": _json("EntryList", "the entries"), **_ERRORS},
            }
        },
        "/api/entries/{id}": {
            "get": {
                "summary": "One entry with every stored version, oldest first",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "the entry id (percent-encoded)",
                    },
                    _param("feed", {"type": "string"}, "the feed, when several have this id"),
                ],
                "responses": {
                    "200": _json("EntryWithVersions", "the entry"),
                    "409": _json("Error", "the id is in several feeds: pass feed="),
                    **_ERRORS,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}
