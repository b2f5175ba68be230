"""The file sink's options model (`[[sinks]]` tables of type "file"). Apart from
`syncd.sinks.file`, so that building and using a file sink needs no validation library: a pass
whose config the hand checker (`syncd.configcheck`) accepted never imports pydantic.
"""

from __future__ import annotations

from syncd.sinks.options import NonEmptyText, SinkOptions

__all__ = ["FileOptions"]


class FileOptions(SinkOptions):
    """A file sink's keys: the JSON Lines file (relative to the config file's directory) and
    whether each batch is fsynced before it counts as delivered."""

    path: NonEmptyText
    fsync: bool = False

    def target(self) -> str:
        return self.path
