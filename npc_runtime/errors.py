"""The project's exception hierarchy: every error a caller of `npc_runtime` can see.

Lower-level errors (ZeroMQ, ONNX Runtime, SQLite, the OS) are translated into these once, at the boundary
where they happen, with ``raise ... from exc`` so the original stays in the traceback.
"""

from __future__ import annotations

__all__ = [
    "NpcRuntimeError",
    "ConfigError",
    "BundleError",
    "PersonaError",
    "SessionStoreError",
    "ImageError",
    "InferenceError",
    "TransportError",
    "ServerOffline",
    "RequestFailed",
    "TreeError",
]


class NpcRuntimeError(Exception):
    """Base class of every error raised by this project."""


class ConfigError(NpcRuntimeError):
    """A command-line option, configuration value or path is unusable."""


class BundleError(NpcRuntimeError):
    """A model bundle is missing, incomplete or corrupt; ``path`` names the offending file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class PersonaError(NpcRuntimeError):
    """A persona card cannot be loaded; ``path`` and ``field`` name what is wrong."""

    def __init__(self, message: str, path: str | None = None, field: str | None = None) -> None:
        prefix = ""
        if path:
            prefix += f"{path}: "
        if field:
            prefix += f"field '{field}': "
        super().__init__(prefix + message)
        self.path = path
        self.field = field


class SessionStoreError(NpcRuntimeError):
    """The session database cannot be opened, read or written."""


class ImageError(NpcRuntimeError):
    """An image attached to a request cannot be decoded or breaks a limit."""


class InferenceError(NpcRuntimeError):
    """ONNX Runtime failed to load or run a graph."""


class TransportError(NpcRuntimeError):
    """A ZeroMQ socket could not bind, connect, send or receive."""


class ServerOffline(TransportError):
    """The client gave up: the server did not answer within its timeout after every retry."""


class RequestFailed(NpcRuntimeError):
    """The server answered a request with an ``error`` message."""

    def __init__(self, code: str, message: str, request_id: object = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class TreeError(NpcRuntimeError):
    """A dialogue tree (or its JSON) is malformed, or an exported file failed its check."""
