"""The checked form of a submission request (the states and fields: launcher/contract.py)."""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from hubflow.launcher.contract import FRAMEWORKS, MAX_PAYLOAD_BYTES, SUBMIT_FIELDS


class RequestError(ValueError):
    """A submission request is malformed; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


#: A job's name: 1 to 63 ASCII letters, digits, '.', '_', '-' or spaces, not starting with '.',
#: '-' or a space (no control characters, no newline: the whole string must match).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._ -]{0,62}")
#: The longest server name (JupyterHub's own limit on a named server).
MAX_SERVER_NAME = 255
#: The most ranks and GPUs per rank a request may ask for (quotas usually allow far fewer).
MAX_WORKERS = 1024
MAX_GPUS_PER_WORKER = 64
#: A submission's client key: a retry with the same key gets the job the first try made.
CLIENT_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Base64 is checked and decoded this many characters at a time (a multiple of 4).
BASE64_SLICE = 1 << 20
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*")
_BASE64_END = re.compile(r"[A-Za-z0-9+/]*={0,2}")
#: The most '[' and '{' a body may hold (a submit body is one flat object).
MAX_JSON_CONTAINERS = 64


@dataclass(frozen=True)
class JobRequest:
    """A checked `POST api/jobs` body."""

    payload: bytes
    workers: int = 1
    gpus_per_worker: int = 0
    framework: str = "pytorch"
    name: str = ""
    server_name: str = ""
    client_key: str | None = None

    @property
    def total_gpus(self) -> int:
        return self.workers * self.gpus_per_worker


def _int_field(body: dict[str, Any], field: str, default: int, minimum: int, maximum: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(field, f"must be an integer ≥ {minimum}")
    if value > maximum:
        raise RequestError(field, f"must be an integer from {minimum} to {maximum}")
    return value


def _str_field(body: dict[str, Any], field: str, default: str) -> str:
    value = body.get(field, default)
    if not isinstance(value, str):
        raise RequestError(field, "must be a string")
    return value


def _refuse_constant(name: str) -> Any:
    raise RequestError("body", f"{name} is not JSON")


def decode_base64(text: str, field: str) -> bytes:
    """Strict base64 (its alphabet, padding only at the end), checked and decoded from the text
    itself in slices: no bytes copy of the whole text, and a thread doing it lets others run
    between slices."""
    if len(text) % 4:
        raise RequestError(field, "must be base64")
    pieces = []
    for start in range(0, len(text), BASE64_SLICE):
        piece = text[start : start + BASE64_SLICE]
        last = start + BASE64_SLICE >= len(text)
        if not (_BASE64_END if last else _BASE64_BODY).fullmatch(piece):
            raise RequestError(field, "must be base64")
        pieces.append(binascii.a2b_base64(piece))
    return b"".join(pieces)


def decode_body(raw: bytes) -> str:
    """A request body as text (UTF-8)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("body", "must be UTF-8 JSON") from None


def parse_json_body(text: str) -> Any:
    """A request body as JSON: no NaN or Infinity, numbers of at most 4300 digits (Python's own
    limit), few objects and arrays; RequestError("body") otherwise."""
    # counted before parsing, so no body can make the parser recurse deeply
    if text.count("[") + text.count("{") > MAX_JSON_CONTAINERS:
        raise RequestError("body", f"more than {MAX_JSON_CONTAINERS} JSON objects and arrays")
    try:
        return json.loads(text or "null", parse_constant=_refuse_constant)
    except ValueError as e:
        if isinstance(e, RequestError):
            raise
        raise RequestError("body", "must be JSON") from None


def parse_job_request(body: Any, payload: bytes | None = None) -> JobRequest:
    """Check a submission body; raise RequestError naming the first bad or unknown field.
    `payload`: the payload's bytes, decoded as the body streamed in (jobs/submitbody.py), its
    `payload` field then empty."""
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    known = set(SUBMIT_FIELDS)
    unknown = sorted(set(body) - known)
    if unknown:
        field = unknown[0] if len(unknown[0]) <= 64 else unknown[0][:64] + "..."
        raise RequestError(field, f"unknown field (known: {', '.join(sorted(known))})")
    if "payload" not in body:
        raise RequestError("payload", "required (base64 of the cloudpickled payload)")
    raw = _str_field(body, "payload", "")
    if payload is not None and raw:
        raise RequestError("payload", "given twice")
    if len(raw) > 4 * -(-MAX_PAYLOAD_BYTES // 3):
        raise RequestError("payload", f"must hold 1 byte to {MAX_PAYLOAD_BYTES // 2**20} MiB")
    if payload is None:
        payload = decode_base64(raw, "payload")
    if not payload or len(payload) > MAX_PAYLOAD_BYTES:
        raise RequestError("payload", f"must hold 1 byte to {MAX_PAYLOAD_BYTES // 2**20} MiB")
    framework = _str_field(body, "framework", "pytorch")
    if framework not in FRAMEWORKS:
        raise RequestError("framework", f"must be one of {', '.join(FRAMEWORKS)}")
    name = _str_field(body, "name", "")
    if name and not NAME_PATTERN.fullmatch(name):
        raise RequestError(
            "name", "must be 1-63 letters, digits, '.', '_', '-' or spaces, on one line"
        )
    server_name = _str_field(body, "server_name", "")
    if len(server_name) > MAX_SERVER_NAME or not server_name.isprintable() or "/" in server_name:
        raise RequestError(
            "server_name", f"must be a server name: at most {MAX_SERVER_NAME} characters, no '/'"
        )
    client_key = body.get("client_key")
    if client_key is not None and not (
        isinstance(client_key, str) and CLIENT_KEY_PATTERN.fullmatch(client_key)
    ):
        raise RequestError("client_key", "must be 1-64 letters, digits, '_' or '-'")
    return JobRequest(
        payload=payload,
        workers=_int_field(body, "workers", 1, 1, MAX_WORKERS),
        gpus_per_worker=_int_field(body, "gpus_per_worker", 0, 0, MAX_GPUS_PER_WORKER),
        framework=framework,
        name=name,
        server_name=server_name,
        client_key=client_key,
    )
