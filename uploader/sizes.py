"""Byte counts as people type them (`--chunk-size 512k`) and read them."""
import re

# Binary multiples, as split(1) and dd(1) read them: 4M is 4 MiB.
_MULTIPLES = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'4194304', '512k', '4M', '4MiB', '1.5m' to bytes (k, M, G are powers of 1024, with
    or without 'B'/'iB'); ValueError for anything else, or for less than one byte."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size: write bytes, or a number with k, M or G "
                         "(powers of 1024), e.g. 524288, 512k, 4M")
    number, unit = match.groups()
    size = int(float(number) * _MULTIPLES[unit.lower()])
    if size < 1:
        raise ValueError(f"{text!r} is less than one byte")
    return size


def format_size(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
