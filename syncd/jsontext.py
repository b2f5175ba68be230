"""JSON string literals built on their UTF-8 bytes.

`literal(text)` is `json.dumps(text, ensure_ascii=False)` encoded as UTF-8, byte for byte, in
about half the time of json's C encoder on long non-ASCII text (content, summaries), which
escapes such text a character at a time; here a few `bytes.replace` calls do. The content hash's
canonical form and the envelope's spliced entry are built with it.

Pure: no I/O, no state. It must never differ from json's own text: both the hash (stored) and
the envelope (signed by webhook sinks) depend on those exact bytes.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["literal"]

# json.dumps(ensure_ascii=False) escapes exactly these: backslash, quote and C0 controls, the
# common ones in short form. In UTF-8, bytes below 0x80 only ever stand for themselves, so
# escaping the encoded bytes gives the encoded escaped string.
_C0: Final = bytes(range(0x20))
_C0_RE: Final = re.compile(rb"[\x00-\x1f]")
_ESCAPES: Final = {
    code: b"\\u%04x" % code for code in range(0x20) if code not in (0x08, 0x09, 0x0A, 0x0C, 0x0D)
} | {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r"}


def literal(text: str, *, xml: bool = False, errors: str = "surrogatepass") -> bytes:
    """json.dumps(text, ensure_ascii=False) encoded as UTF-8 with `errors` ("strict" raises
    UnicodeEncodeError for a lone surrogate, as `str.encode()` does).

    `xml`: `text` was read from well-formed XML 1.0, whose characters exclude every C0 control
    but tab, line feed and carriage return (as literals and as character references: libxml2
    refuses the document), so two searches replace the scan for the others.
    """
    data = text.encode("utf-8", errors)
    # Each replace only when needed: a search is cheaper than a copy, and most texts lack most.
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")  # first: the escapes below add backslashes
    if b'"' in data:
        data = data.replace(b'"', b'\\"')
    if b"\n" in data:
        data = data.replace(b"\n", b"\\n")
    if (b"\t" in data or b"\r" in data) if xml else len(data.translate(None, _C0)) < len(data):
        # Another control character: rare. (The general check copies the text once.)
        data = _C0_RE.sub(lambda match: _ESCAPES[match[0][0]], data)
    return b'"' + data + b'"'
