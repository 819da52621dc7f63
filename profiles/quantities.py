"""Kubernetes quantities, JupyterHub byte specifications and their display."""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal

_MULTIPLIERS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
#: The longest number, quantity or duration accepted from any input (a form, a request, a profile
#: file, a setting), checked before it is parsed, so no input costs more than microseconds.
MAX_NUMBER_CHARS = 32
# A plain decimal: ASCII digits only ([0-9], unlike \d or str.isdigit(), refuses "²" and "٣"), at
# most 15 before the point and 9 after: exact in a Decimal, and far beyond any real amount.
_DECIMAL = r"[0-9]{1,15}(?:\.[0-9]{1,9})?"
_NUMBER = re.compile(_DECIMAL)
_QUANTITY = re.compile(rf"({_DECIMAL})(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_CPU = re.compile(rf"({_DECIMAL})(m?)")
# JupyterHub's ByteSpecification (used by KubeSpawner's mem_limit): K, M, G, T are powers of 1024.
_JUPYTERHUB_BYTES = re.compile(rf"({_DECIMAL})([KMGT]?)")
_JUPYTERHUB_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


#: Enough digits for a bounded number times the largest unit (24 + 19), so products are exact.
_EXACT = Context(prec=64)


def _bounded(text: object, what: str) -> str:
    """`text` if it is a string short enough to parse; ValueError naming `what` otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"must be {what}, not {type(text).__name__}")
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"{len(text)} characters: must be {what} of at most {MAX_NUMBER_CHARS}")
    return text


def parse_decimal(text: str) -> Decimal:
    """A plain decimal number such as "2" or "0.5" (no sign, exponent or spaces)."""
    if not _NUMBER.fullmatch(_bounded(text, "a number")):
        raise ValueError(f"'{text}' is not a number such as 2 or 0.5")
    return Decimal(text)


def parse_cpu(text: str) -> Decimal:
    """CPUs in a Kubernetes CPU quantity: "2", "0.5" or "500m" (thousandths)."""
    match = _CPU.fullmatch(_bounded(text, "a CPU amount"))
    if not match:
        raise ValueError(f"'{text}' is not a CPU amount such as 2, 0.5 or 500m")
    number = Decimal(match.group(1))
    return number / 1000 if match.group(2) else number


def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity ("2G" = 2*10**9, "512Mi" = 512*2**20), rounded up."""
    match = _QUANTITY.fullmatch(_bounded(text, "a quantity"))
    if not match:
        raise ValueError(f"'{text}' is not a quantity such as 512Mi or 8G")
    return math.ceil(_EXACT.multiply(Decimal(match.group(1)), _MULTIPLIERS[match.group(2) or ""]))


def parse_jupyterhub_bytes(value: object) -> int:
    """Bytes in a JupyterHub byte specification: an integer, or a number with K, M, G or T
    (powers of 1024, so "2G" = 2 GiB, unlike Kubernetes)."""
    if isinstance(value, bool):
        raise ValueError("must be bytes or a number with suffix K, M, G or T")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _JUPYTERHUB_BYTES.fullmatch(_bounded(value, "a byte size"))
        if match and (match.group(2) or "." not in value):
            return int(_EXACT.multiply(Decimal(match.group(1)), _JUPYTERHUB_UNITS[match.group(2)]))
    raise ValueError("must be bytes or a number with suffix K, M, G or T (1G = 1024³ bytes)")


_DURATION_PART = re.compile(r"([0-9]+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: int | str) -> int:
    """Seconds in a duration: an integer of seconds, or "45s", "30m", "2h", "1d", "1h30m"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = _bounded(value, "a duration") if isinstance(value, str) else ""
    if re.fullmatch(r"(?:[0-9]+[smhd])+", text):
        return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    raise ValueError(f"{value!r} is not a duration such as 90, 30m, 2h or 1h30m")


def format_duration(seconds: float) -> str:
    """A duration in words: 5400 -> "1 h 30 min", 45 -> "45 s"."""
    seconds = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts)


def format_bytes(size: float) -> str:
    """A byte count in words: "8 GiB", "2 GB", "1.5 GiB"."""
    size = int(size)
    for unit, factor in (
        ("TiB", 2**40),
        ("GiB", 2**30),
        ("MiB", 2**20),
        ("TB", 10**12),
        ("GB", 10**9),
        ("MB", 10**6),
    ):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def format_number(value: float) -> str:
    """A number without a useless ".0": 2.0 -> "2", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() else str(value)


def is_multiple(value: float, step: float) -> bool:
    """Whether value is a whole multiple of step, in exact decimal arithmetic."""
    return Decimal(str(value)) % Decimal(str(step)) == 0
