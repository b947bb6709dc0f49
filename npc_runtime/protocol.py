"""Protocol v1: message types, error codes, limits, field rules and the msgpack encode/decode.

This module is the only place that turns ZeroMQ payload bytes into messages and back. ``docs/protocol.md`` is the
contract for clients in other languages; the golden fixtures under ``engine_bridge/fixtures/`` hold the two
together. Nothing here trusts its input: every rule breach becomes a :class:`ProtocolError` with a wire code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import NpcRuntimeError

__all__ = [
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "REQUEST_TYPES",
    "REPLY_TYPES",
    "ERROR_CODES",
    "IMAGE_FORMATS",
    "OPTION_NAMES",
    "Limits",
    "ProtocolError",
    "Hello",
    "Say",
    "Cancel",
    "Reset",
    "PersonasRequest",
    "StateGet",
    "StateSet",
    "ImageInput",
    "SayOptions",
    "Request",
    "encode",
    "decode",
    "parse_request",
    "request_id_of",
    "error_message",
]

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

#: Request type -> the reply type a successful request gets (``say`` gets ``chunk``* then ``reply``).
REQUEST_TYPES: dict[str, str] = {
    "hello": "welcome",
    "say": "reply",
    "cancel": "cancel.ok",
    "reset": "reset.ok",
    "personas": "personas.ok",
    "state.get": "state.get.ok",
    "state.set": "state.set.ok",
}
REPLY_TYPES: tuple[str, ...] = (
    "welcome",
    "chunk",
    "reply",
    "cancel.ok",
    "reset.ok",
    "personas.ok",
    "state.get.ok",
    "state.set.ok",
    "error",
)

ERROR_CODES: tuple[str, ...] = (
    "bad_message",  # not msgpack, not a map, keys not strings
    "unsupported_version",  # v missing or not a supported version
    "unknown_type",  # type missing or not a request type
    "invalid_field",  # a field is missing or has the wrong type or value; the message names it
    "unknown_persona",  # say names a persona the server does not have
    "too_large",  # message, text, image or context over its limit
    "overloaded",  # the generation queue is full; retry later
    "cancelled",  # the say was cancelled by a cancel request
    "timeout",  # the say did not finish before its deadline
    "internal",  # a bug or a model failure; the server keeps serving
)

IMAGE_FORMATS: tuple[str, ...] = ("png", "jpeg", "rgb8")
OPTION_NAMES: tuple[str, ...] = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stream",
    "repetition_penalty",
    "stop",
    "timeout_ms",
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """Size limits enforced on every request; sent to clients in ``welcome.limits``."""

    max_message_bytes: int = 8 * 1024 * 1024
    max_text_chars: int = 2000
    max_image_bytes: int = 4 * 1024 * 1024
    max_image_width: int = 1920
    max_image_height: int = 1080
    max_context_entries: int = 64
    max_context_value_chars: int = 512
    max_id_chars: int = 128
    max_session_chars: int = 128
    max_tokens: int = 128
    max_stop_sequences: int = 8
    max_timeout_ms: int = 600_000

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"limit {name} must be a positive integer, got {value!r}")
        if self.max_image_bytes >= self.max_message_bytes:
            raise ValueError("max_image_bytes must be smaller than max_message_bytes")

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class ProtocolError(NpcRuntimeError):
    """A request breaks a protocol rule; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str, request_id: object = None, field: str | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.field = field


# --------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ImageInput:
    """An encoded screenshot as received; decoding happens off the socket loop (``images.decode_image``)."""

    format: str
    data: bytes
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class SayOptions:
    """Sampling and delivery options of one ``say``; ``None`` means the server's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stream: bool = False
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = ()
    timeout_ms: int | None = None


@dataclass(frozen=True)
class Hello:
    id: Any


@dataclass(frozen=True)
class Say:
    id: Any
    persona: str
    session: str
    text: str
    image: ImageInput | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    options: SayOptions = field(default_factory=SayOptions)


@dataclass(frozen=True)
class Cancel:
    id: Any
    target: Any


@dataclass(frozen=True)
class Reset:
    id: Any
    session: str


@dataclass(frozen=True)
class PersonasRequest:
    id: Any


@dataclass(frozen=True)
class StateGet:
    id: Any
    session: str


@dataclass(frozen=True)
class StateSet:
    id: Any
    session: str
    state: Mapping[str, Any]


Request = Hello | Say | Cancel | Reset | PersonasRequest | StateGet | StateSet


# --------------------------------------------------------------------------------------------- encode / decode


def _plain(value: Any) -> Any:
    """Turn numpy scalars, tuples and other near-primitives into what msgpack packs as the protocol wants."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, str, bytes, int)) or value is None:
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a protocol message")


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as msgpack bytes: string keys, bin for bytes, 64-bit floats, key order preserved."""
    return msgpack.packb(_plain(dict(message)), use_bin_type=True, use_single_float=False)


def decode(payload: bytes, limits: Limits | None = None) -> dict[str, Any]:
    """Bytes of one ZeroMQ payload frame to a message map, or :class:`ProtocolError` ``bad_message``/``too_large``."""
    limits = limits or Limits()
    if len(payload) > limits.max_message_bytes:
        raise ProtocolError(
            "too_large", f"message is {len(payload)} bytes; the limit is {limits.max_message_bytes}"
        )
    try:
        message = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ProtocolError(
            "bad_message", f"payload is not one msgpack value ({type(exc).__name__}: {exc or 'invalid'})"
        ) from exc
    except Exception as exc:  # msgpack raises a handful of other types on truncated input
        raise ProtocolError("bad_message", f"payload is not valid msgpack: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", f"message must be a map, got {_wire_type(message)}")
    return message


def _wire_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _valid_id(value: Any, limits: Limits) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, str) and 0 < len(value) <= limits.max_id_chars


def request_id_of(message: Any, limits: Limits | None = None) -> Any:
    """The request ``id`` when the message has a readable one, else ``None``; used for error replies."""
    if isinstance(message, dict):
        rid = message.get("id")
        if _valid_id(rid, limits or Limits()):
            return rid
    return None


# --------------------------------------------------------------------------------------------- field rules


class _Fields:
    """Reads typed fields of one request map; every failure names the field."""

    def __init__(self, message: Mapping[str, Any], rid: Any, limits: Limits) -> None:
        self.message = message
        self.rid = rid
        self.limits = limits

    def fail(self, name: str, why: str, code: str = "invalid_field") -> ProtocolError:
        return ProtocolError(code, f"field '{name}' {why}", self.rid, name)

    def string(self, name: str, max_chars: int, value: Any = ..., required: bool = True) -> str | None:
        if value is ...:
            value = self.message.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {_wire_type(value)}")
        if not value.strip():
            raise self.fail(name, "must not be empty")
        if len(value) > max_chars:
            code = "too_large" if name == "text" else "invalid_field"
            raise self.fail(name, f"is {len(value)} characters; the limit is {max_chars}", code)
        return value


def _check_int(f: _Fields, name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise f.fail(name, f"must be an integer, got {_wire_type(value)}")
    if not lo <= value <= hi:
        raise f.fail(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _check_float(f: _Fields, name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise f.fail(name, f"must be a number, got {_wire_type(value)}")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise f.fail(name, f"must be between {lo} and {hi}, got {value}")
    return number


def _parse_image(f: _Fields, raw: Any) -> ImageInput:
    lim = f.limits
    if not isinstance(raw, dict):
        raise f.fail("image", f"must be a map, got {_wire_type(raw)}")
    fmt = raw.get("format")
    if fmt not in IMAGE_FORMATS:
        raise f.fail("image.format", f"must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    data = raw.get("data")
    if not isinstance(data, bytes):
        raise f.fail("image.data", f"must be bin (bytes), got {_wire_type(data)}")
    if len(data) > lim.max_image_bytes:
        raise f.fail("image.data", f"is {len(data)} bytes; the limit is {lim.max_image_bytes}", "too_large")
    if not data:
        raise f.fail("image.data", "must not be empty")
    dims = {}
    for key, hi in (("width", lim.max_image_width), ("height", lim.max_image_height)):
        value = raw.get(key)
        if value is None:
            if fmt == "rgb8":
                raise f.fail(f"image.{key}", "is required for rgb8 images")
            dims[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise f.fail(f"image.{key}", f"must be a positive integer, got {value!r}")
        if value > hi:
            raise f.fail(f"image.{key}", f"is {value}; the limit is {hi}", "too_large")
        dims[key] = value
    if fmt == "rgb8" and len(data) != dims["width"] * dims["height"] * 3:
        raise f.fail(
            "image.data",
            f"has {len(data)} bytes; rgb8 {dims['width']}x{dims['height']} needs {dims['width'] * dims['height'] * 3}",
        )
    return ImageInput(format=fmt, data=data, width=dims["width"], height=dims["height"])


def _parse_context(f: _Fields, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise f.fail("context", f"must be a map of strings, got {_wire_type(raw)}")
    if len(raw) > f.limits.max_context_entries:
        raise f.fail(
            "context", f"has {len(raw)} entries; the limit is {f.limits.max_context_entries}", "too_large"
        )
    context: dict[str, str] = {}
    for key, value in raw.items():
        name = f"context.{key}"
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ", ".join(value)
        if not isinstance(value, str):
            raise f.fail(name, f"must be a string or a list of strings, got {_wire_type(value)}")
        if len(value) > f.limits.max_context_value_chars:
            raise f.fail(
                name, f"is {len(value)} characters; the limit is {f.limits.max_context_value_chars}", "too_large"
            )
        context[key] = value
    return context


def _parse_options(f: _Fields, raw: Any) -> SayOptions:
    if raw is None:
        return SayOptions()
    if not isinstance(raw, dict):
        raise f.fail("options", f"must be a map, got {_wire_type(raw)}")
    lim = f.limits
    out: dict[str, Any] = {}
    if raw.get("max_tokens") is not None:
        out["max_tokens"] = _check_int(f, "options.max_tokens", raw["max_tokens"], 1, lim.max_tokens)
    if raw.get("temperature") is not None:
        out["temperature"] = _check_float(f, "options.temperature", raw["temperature"], 0.0, 5.0)
    if raw.get("top_p") is not None:
        out["top_p"] = _check_float(f, "options.top_p", raw["top_p"], 0.0, 1.0)
        if out["top_p"] == 0.0:
            raise f.fail("options.top_p", "must be greater than 0")
    if raw.get("top_k") is not None:
        out["top_k"] = _check_int(f, "options.top_k", raw["top_k"], 0, 1_000_000)
    if raw.get("seed") is not None:
        out["seed"] = _check_int(f, "options.seed", raw["seed"], 0, _INT64_MAX)
    if raw.get("stream") is not None:
        if not isinstance(raw["stream"], bool):
            raise f.fail("options.stream", f"must be a bool, got {_wire_type(raw['stream'])}")
        out["stream"] = raw["stream"]
    if raw.get("repetition_penalty") is not None:
        out["repetition_penalty"] = _check_float(
            f, "options.repetition_penalty", raw["repetition_penalty"], 1.0, 3.0
        )
    if raw.get("stop") is not None:
        stop = raw["stop"]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise f.fail("options.stop", "must be a list of non-empty strings")
        if len(stop) > lim.max_stop_sequences:
            raise f.fail("options.stop", f"has {len(stop)} entries; the limit is {lim.max_stop_sequences}")
        out["stop"] = tuple(stop)
    if raw.get("timeout_ms") is not None:
        out["timeout_ms"] = _check_int(f, "options.timeout_ms", raw["timeout_ms"], 1, lim.max_timeout_ms)
    return SayOptions(**out)


def parse_request(message: Mapping[str, Any], limits: Limits | None = None) -> Request:
    """Validate a decoded map as a v1 request and return its typed form; unknown fields are ignored."""
    limits = limits or Limits()
    rid = message.get("id")
    if not _valid_id(rid, limits):
        raise ProtocolError(
            "invalid_field",
            f"field 'id' must be a non-empty string of at most {limits.max_id_chars} characters "
            f"or a 64-bit integer, got {_wire_type(rid)}",
            None,
            "id",
        )
    version = message.get("v")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {version!r} is not supported; this server speaks {list(SUPPORTED_VERSIONS)}",
            rid,
            "v",
        )
    mtype = message.get("type")
    if mtype not in REQUEST_TYPES:
        raise ProtocolError(
            "unknown_type",
            f"unknown request type {mtype!r}; expected one of {', '.join(REQUEST_TYPES)}",
            rid,
            "type",
        )
    f = _Fields(message, rid, limits)
    if mtype == "hello":
        return Hello(id=rid)
    if mtype == "personas":
        return PersonasRequest(id=rid)
    if mtype == "cancel":
        target = message.get("target")
        if not _valid_id(target, limits):
            raise f.fail("target", "must be the id (string or integer) of a say request")
        return Cancel(id=rid, target=target)
    session = f.string("session", limits.max_session_chars)
    if mtype == "reset":
        return Reset(id=rid, session=session)
    if mtype == "state.get":
        return StateGet(id=rid, session=session)
    if mtype == "state.set":
        state = message.get("state")
        if not isinstance(state, dict):
            raise f.fail("state", f"must be a map (as returned by state.get), got {_wire_type(state)}")
        return StateSet(id=rid, session=session, state=state)
    # say
    persona = f.string("persona", 64)
    text = f.string("text", limits.max_text_chars)
    image = None if message.get("image") is None else _parse_image(f, message["image"])
    context = _parse_context(f, message.get("context"))
    options = _parse_options(f, message.get("options"))
    return Say(
        id=rid, persona=persona, session=session, text=text, image=image, context=context, options=options
    )


def error_message(code: str, message: str, request_id: object = None, field: str | None = None) -> dict:
    """An ``error`` reply map; ``id`` is present only when the request's id could be read."""
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    out: dict[str, Any] = {"v": PROTOCOL_VERSION}
    if request_id is not None:
        out["id"] = request_id
    out["type"] = "error"
    out["code"] = code
    out["message"] = message
    if field is not None:
        out["field"] = field
    return out
