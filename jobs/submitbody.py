"""A submit body (`POST api/jobs`) parsed as it arrives: the payload's base64 is checked and
decoded chunk by chunk, and the rest of the body (its other fields, at most
SUBMIT_OVERHEAD_BYTES) is kept and parsed as JSON once the body has ended. No step costs the
service's loop more than one chunk's work, and the body is never held whole: only the decoded
payload is."""

from __future__ import annotations

import binascii
import re

from hubflow.jobs.limits import SUBMIT_OVERHEAD_BYTES
from hubflow.jobs.models import (
    MAX_JSON_CONTAINERS,
    JobRequest,
    RequestError,
    decode_body,
    parse_job_request,
    parse_json_body,
)
from hubflow.jobs.quota import Refusal

#: What may follow inside a string (escapes included) before it ends, a lone '\' at the end
#: of a chunk excepted.
_STRING_TEXT = re.compile(rb'(?:[^"\\]|\\.)*', re.DOTALL)
#: Where a string starts or an object or array opens or closes, outside strings.
_STRUCTURE = re.compile(rb'["{}\[\]]')
#: Base64's alphabet, and its last group (padding only there).
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LAST_GROUP = re.compile(rb"[A-Za-z0-9+/]{2}(?:[A-Za-z0-9+/]{2}|[A-Za-z0-9+/]=|==)")
_NOT_BASE64 = "must be base64 (of JSON escapes, only \\/ is taken)"


def _not_base64(text: bytes) -> RequestError:
    """The refusal of a payload's text that is not base64: the body's when it is not UTF-8."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return RequestError("body", "must be UTF-8 JSON")
    return RequestError("payload", _NOT_BASE64)


class SubmitBody:
    """Takes a submit body chunk by chunk (`feed`) and gives the checked request (`request`).

    The top-level `payload` string goes to a base64 decoder as it arrives; in what is kept of
    the body it is an empty string. A refusal (RequestError, or a 413 Refusal for a payload past
    `max_payload_bytes` or other fields past `max_rest` bytes) comes as soon as it is known.
    """

    def __init__(self, max_payload_bytes: int, max_rest: int = SUBMIT_OVERHEAD_BYTES) -> None:
        self.max_payload_bytes, self.max_rest = max_payload_bytes, max_rest
        #: The body without the payload's text.
        self.rest = bytearray()
        self.depth = 0
        self.containers = 0
        #: Inside a string of `rest` (it started there), and whether a '\' ended the last chunk.
        self.in_string = False
        self.escaped = False
        self.string_start = 0
        #: The last string that ended in the top-level object (a key, before its ':').
        self.last_string = b""
        #: Inside the payload's string: its base64 not decoded yet (a group may be its last).
        self.in_payload = False
        self.base64 = bytearray()
        #: The payload decoded so far, in pieces (None: no payload yet), and their length.
        self.payload: list[bytes] | None = None
        self.payload_bytes = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        position = 0
        while position < len(chunk):
            if self.in_payload:
                position = self._payload_text(chunk, position)
            elif self.in_string:
                position = self._string_text(chunk, position)
            else:
                position = self._structure(chunk, position)
        if len(self.rest) > self.max_rest:
            raise Refusal(
                413,
                "body",
                f"the fields other than payload hold more than {self.max_rest} bytes",
            )

    def request(self) -> JobRequest:
        """The checked request, once the whole body was fed (the payload's pieces are joined
        without the GIL: a thread running this leaves the loop to other requests)."""
        if self.in_payload or self.in_string:
            raise RequestError("body", "must be JSON (a string does not end)")
        if self.payload is not None:
            last = bytes(self.base64)
            if last and not _LAST_GROUP.fullmatch(last):
                raise RequestError("payload", _NOT_BASE64)
            self._decoded(binascii.a2b_base64(last))
        body = parse_json_body(decode_body(bytes(self.rest)))
        payload = None if self.payload is None else b"".join(self.payload)
        self.payload = None
        return parse_job_request(body, payload)

    def _structure(self, chunk: bytes, position: int) -> int:
        found = _STRUCTURE.search(chunk, position)
        end = len(chunk) if found is None else found.start()
        self.rest += chunk[position:end]
        if found is None:
            return end
        mark = chunk[end : end + 1]
        if mark in (b"{", b"["):
            self.depth += 1
            self.containers += 1
            if self.containers > MAX_JSON_CONTAINERS:
                raise RequestError(
                    "body", f"more than {MAX_JSON_CONTAINERS} JSON objects and arrays"
                )
        elif mark in (b"}", b"]"):
            self.depth -= 1
        elif self._payload_starts():
            self.rest += b'""'
            self.in_payload, self.payload = True, []
            return end + 1
        else:
            self.in_string, self.string_start = True, len(self.rest)
        self.rest += mark
        return end + 1

    def _payload_starts(self) -> bool:
        """Whether a string starting now is the value of the top-level `payload`."""
        if self.depth != 1 or self.last_string != b"payload":
            return False
        last = len(self.rest) - 1
        while last >= 0 and self.rest[last] in b" \t\r\n":
            last -= 1
        if last < 0 or self.rest[last] != ord(":"):
            return False
        if self.payload is not None:
            raise RequestError("payload", "given twice")
        return True

    def _string_text(self, chunk: bytes, position: int) -> int:
        if self.escaped:  # the character a '\' at the end of the last chunk escapes
            self.rest += chunk[position : position + 1]
            self.escaped, position = False, position + 1
        matched = _STRING_TEXT.match(chunk, position)
        end = matched.end() if matched else position
        self.rest += chunk[position:end]
        if end == len(chunk):
            return end
        if chunk[end : end + 1] == b"\\":  # the last byte: its escaped character comes next
            self.rest += b"\\"
            self.escaped = True
            return end + 1
        self.rest += b'"'
        self.in_string = False
        if self.depth == 1:
            self.last_string = bytes(self.rest[self.string_start + 1 : -1])
        return end + 1

    def _payload_text(self, chunk: bytes, position: int) -> int:
        end = chunk.find(b'"', position)
        text = chunk[position : len(chunk) if end < 0 else end]
        if self.escaped:
            text, self.escaped = b"\\" + text, False
        if end < 0 and text.endswith(b"\\"):
            text, self.escaped = text[:-1], True  # an escape cut by the chunk's end
        if b"\\" in text:
            text = text.replace(b"\\/", b"/")
        if text.translate(None, _ALPHABET + b"="):
            raise _not_base64(text)
        self.base64 += text
        # all but the last group, which may be the padded one
        ready = len(self.base64) - 4
        ready -= ready % 4
        if ready > 0:
            group = bytes(self.base64[:ready])
            if group.translate(None, _ALPHABET):
                raise RequestError("payload", _NOT_BASE64)
            del self.base64[:ready]
            self._decoded(binascii.a2b_base64(group))
        if end < 0:
            return len(chunk)
        self.in_payload = False
        return end + 1

    def _decoded(self, data: bytes) -> None:
        assert self.payload is not None
        self.payload.append(data)
        self.payload_bytes += len(data)
        if self.payload_bytes > self.max_payload_bytes:
            raise Refusal(
                413,
                "payload",
                f"more than {self.max_payload_bytes} bytes: this hub's jobs take at most that "
                "(save large data in the workspace instead)",
            )
