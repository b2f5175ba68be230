"""pydantic's validation errors as syncd's: one readable line per problem, naming the file (when
known) and the key path (`sinks[0].evnets: is not a known setting (did you mean 'events'?)`).

Shared by the config loader and the sink registry. Pure: formats, reads nothing.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from syncd.errors import ConfigError, ConfigErrors

__all__ = ["ConfigErrors", "did_you_mean", "key_path", "readable_errors"]


def key_path(parts: tuple[int | str, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _known_keys(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model is not None else []


def _message(err: ErrorDetails, model: type[BaseModel] | None) -> str:
    """One readable phrase for a pydantic error."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "is not a known setting" + did_you_mean(str(err["loc"][-1]), _known_keys(model))
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{value!r} is not one of {ctx.get('expected')}"
    simple = {
        "float_type": "is not a number",
        "int_type": "is not a whole number",
        "bool_type": "is not true or false",
        "string_type": "is not a string",
        "list_type": "is not a list",
        "dict_type": "must be a table",
        "model_type": "must be a table",
        "model_attributes_type": "must be a table",
    }
    if kind in simple:
        return f"{value!r} {simple[kind]}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{value!r} is not a number >= {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("string_too_short", "too_short"):
        return f"{value!r} must not be empty"
    return f"{value!r}: {err['msg']}"


def _owner(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose field the last element of `loc` names (for "did you mean")."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return model


def readable_errors(
    exc: ValidationError,
    source: str | None,
    model: type[BaseModel],
    prefix: tuple[int | str, ...] = (),
) -> list[ConfigError]:
    """One ConfigError per key that failed, in the order pydantic found them."""
    by_key: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        # A union (`command`: a list or a string) tags each branch's error with the branch
        # ("list[str]", "constrained-str", "function-before[...]"): not part of the key path.
        loc = tuple(p for p in err["loc"] if not _branch_tag(p))
        message = _message(err, _owner(model, loc))
        messages = by_key.setdefault(key_path(prefix + loc), [])
        if message not in messages:
            messages.append(message)
    return [
        ConfigError(_either(messages), path=source, key=key) for key, messages in by_key.items()
    ]


def _branch_tag(part: int | str) -> bool:
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none") or "[" in part or "-" in part
    )


def _either(messages: list[str]) -> str:
    """A union's branches' complaints as one: "3 is not a list or not a string"."""
    first, *rest = messages
    head = first.split(" is not ", 1)[0] + " is not " if " is not " in first else None
    if head and all(m.startswith(head) for m in rest):
        return first + "".join(" or not " + m.removeprefix(head) for m in rest)
    return "; ".join(messages)


def did_you_mean(word: str, choices: list[str]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or "" if none is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
