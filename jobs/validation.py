"""Checked query parameters of the jobs API: every value's length and characters are checked
before it is parsed, and a bad one raises RequestError naming the parameter."""

from __future__ import annotations

from hubflow.jobs.models import RequestError

#: The most digits an integer parameter may have (a log offset is a byte count: 18 digits is
#: an exabyte).
MAX_DIGITS = 18
#: The longest `offsets` list (RANK:OFFSET items, one per rank).
MAX_OFFSETS_CHARS = 40 * 1024
#: The longest user name accepted in `user=` (JupyterHub's own column is 255 long).
MAX_USER_CHARS = 255
#: What `follow` may be, and what it means.
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _is_count(text: str) -> bool:
    """ASCII digits only (str.isdigit() also takes '²' and '٣'), and not too many of them."""
    return 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def parse_count(text: str, field: str, limit: int | None = None) -> int:
    """A non-negative integer below `limit` (when given)."""
    if not _is_count(text) or (limit is not None and int(text) >= limit):
        upto = f"from 0 to {limit - 1}" if limit is not None else f"of at most {MAX_DIGITS} digits"
        raise RequestError(field, f"must be an integer {upto}")
    return int(text)


def parse_offsets(text: str, ranks: int) -> dict[int, int]:
    """'0:120,1:80' -> {0: 120, 1: 80} for a job of `ranks` ranks."""
    if len(text) > MAX_OFFSETS_CHARS:
        raise RequestError("offsets", f"longer than {MAX_OFFSETS_CHARS} characters")
    offsets = {}
    for item in filter(None, text.split(",")):
        rank, sep, offset = item.partition(":")
        if not sep or not _is_count(rank) or not _is_count(offset):
            raise RequestError("offsets", f"{item[:40]!r}: must look like RANK:OFFSET")
        if int(rank) >= ranks:
            raise RequestError("offsets", f"rank {int(rank)}: the job has ranks 0 to {ranks - 1}")
        offsets[int(rank)] = int(offset)
    return offsets


def parse_flag(text: str, field: str) -> bool:
    """1/true/yes or 0/false/no."""
    if text not in FLAGS:
        raise RequestError(field, "must be 1 or 0 (true or false)")
    return FLAGS[text]


def parse_user(text: str) -> str:
    """A user name to filter by (admins only)."""
    if not 0 < len(text) <= MAX_USER_CHARS or not text.isprintable():
        raise RequestError("user", f"must be a user name of at most {MAX_USER_CHARS} characters")
    return text
