"""The relay of a pool on Kubernetes: one TCP connection from the jobs service to each rank's
pod, whose frames are authenticated with the pool's key (made for that one pool, in a Secret
only its pods mount; the service keeps it with the pool's job record).

On connecting, the rank sends a fresh random nonce and the service answers with its own; from
then on every frame (as launcher/warm_worker.py encodes them) is followed by an HMAC-SHA256 under
the key of both nonces, the frame's direction, its sequence number on the connection and the
frame itself. A frame recorded from another connection, replayed, reordered, or sent the other
way fails its check, and the connection is dropped. The service's first frame is
{"kind": "attach"}; the rank answers {"kind": "hello", "rank": R} (see warm_worker.serve_tcp).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

#: The port each rank of a pool on Kubernetes listens on (the chart's NetworkPolicy opens it to
#: the jobs service only).
RELAY_PORT = 7077
NONCE_BYTES = 16
MAC_BYTES = hashlib.sha256().digest_size
TO_RANK, TO_SERVICE = b"service->rank", b"rank->service"
_SEQ = struct.Struct("!Q")


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


class FrameSeal:
    """Seals the frames one end sends on a connection and checks those it receives."""

    def __init__(self, key: bytes, rank_nonce: bytes, service_nonce: bytes, role: str) -> None:
        if not key:
            raise ValueError("a pool's relay needs its key")
        self.key = key
        self.session = rank_nonce + service_nonce
        self.outgoing, self.incoming = (
            (TO_SERVICE, TO_RANK) if role == "rank" else (TO_RANK, TO_SERVICE)
        )
        self.sent = self.received = 0

    def _mac(self, direction: bytes, seq: int, frame: bytes) -> bytes:
        message = self.session + direction + _SEQ.pack(seq) + frame
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def seal(self, frame: bytes) -> bytes:
        """The frame followed by its MAC (the next one this end sends)."""
        mac = self._mac(self.outgoing, self.sent, frame)
        self.sent += 1
        return frame + mac

    def check(self, frame: bytes, mac: bytes) -> None:
        """Raise ValueError unless `mac` is the next frame's from the other end."""
        if not hmac.compare_digest(mac, self._mac(self.incoming, self.received, frame)):
            raise ValueError("a relay frame failed its check (not sealed with the pool's key)")
        self.received += 1
