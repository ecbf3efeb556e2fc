"""IP ranges to accounts: parsing, and an in-memory index that answers "which account's
network is this address in?" in a few microseconds.

The index keeps disjoint ranges sorted by their first address in compact arrays (IPv4 in
``array('I')``, 12 bytes a range; IPv6 in Python lists) and finds an address with one
binary search. Overlapping input ranges are flattened first: the most specific range
(the one that starts later inside another) wins over the range around it, so an admin
can attach ``203.0.113.0/24`` to one account and ``203.0.113.128/25`` to another.

Pure Python: no database, no Flask; the identification service builds it from rows.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

V4_MAX = (1 << 32) - 1


class RangeError(ValueError):
    """A range that cannot be read; the message says what was wrong with it."""


@dataclass(frozen=True)
class IpRange:
    start: int
    end: int
    version: int

    @property
    def network_text(self) -> str:
        """The range as CIDR blocks where it is one, else ``first-last``."""
        cls = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        first, last = cls(self.start), cls(self.end)
        nets = list(ipaddress.summarize_address_range(first, last))
        return str(nets[0]) if len(nets) == 1 else f"{first}-{last}"


def parse_range(text: str) -> IpRange:
    """``203.0.113.0/24``, ``203.0.113.7``, ``2001:db8::/32`` or ``first-last``."""
    text = (text or "").strip()
    if not text:
        raise RangeError("empty; give a CIDR block such as 203.0.113.0/24")
    try:
        if "-" in text:
            first_text, _, last_text = text.partition("-")
            first, last = ipaddress.ip_address(first_text.strip()), ipaddress.ip_address(last_text.strip())
            if first.version != last.version:
                raise RangeError(f"{text!r}: the two ends are of different IP versions")
            if int(last) < int(first):
                raise RangeError(f"{text!r}: the last address is before the first")
            return IpRange(int(first), int(last), first.version)
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise RangeError(f"{text!r} is not an IP address, CIDR block or range ({exc})") from None
    return IpRange(int(net.network_address), int(net.broadcast_address), net.version)


_V4_MAPPED = bytes(10) + b"\xff\xff"


def address_value(text: str) -> tuple[int, int] | None:
    """``(version, integer)`` of an address, ``None`` when it is not one. IPv4-mapped IPv6
    addresses (``::ffff:203.0.113.7``) count as the IPv4 address they carry.

    ``inet_pton`` rather than :mod:`ipaddress`: a twentieth of the time, and every visit
    the drain identifies is parsed once."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError, ValueError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0])
    except (OSError, TypeError, ValueError, AttributeError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")


def truncate(text: str) -> str | None:
    """The address with its host part dropped (IPv4 /24, IPv6 /48): what is kept once a
    visit is matched, so that no full address stays stored."""
    found = address_value(text)
    if found is None:
        return None
    version, value = found
    prefix = 24 if version == 4 else 48
    net = ipaddress.ip_network((value, prefix), strict=False)
    return str(net)


def flatten(ranges: Iterable[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    """Disjoint ``(start, end, value)`` segments, sorted, from possibly nested ranges;
    inside a range, a range that starts later (the more specific one) wins."""
    stack: list[tuple[int, int, int]] = []
    pos = 0

    def close_before(limit: int):
        nonlocal pos
        while stack and stack[-1][1] < limit:
            _, end, value = stack.pop()
            if pos <= end:
                yield pos, end, value
                pos = end + 1
        if stack and pos < limit:
            yield pos, limit - 1, stack[-1][2]
            pos = limit

    for start, end, value in sorted(ranges, key=lambda r: (r[0], -r[1])):
        if stack:
            yield from close_before(start)
        pos = start
        stack.append((start, end, value))
    yield from close_before(1 << 129)


class RangeIndex:
    """Disjoint ranges of one IP version, each with an integer value (an account id)."""

    def __init__(self, segments: Iterable[tuple[int, int, int]], version: int):
        typecode = "I" if version == 4 else None
        starts, ends, values = ([], [], []) if typecode is None else (array("I"), array("I"), array("q"))
        for start, end, value in segments:
            if values and values[-1] == value and ends[-1] + 1 == start:
                ends[-1] = end  # adjacent segments of the same account are one
                continue
            starts.append(start)
            ends.append(end)
            values.append(value)
        self._starts, self._ends, self._values = starts, ends, values

    def __len__(self) -> int:
        return len(self._starts)

    def find(self, value: int) -> int | None:
        i = bisect_right(self._starts, value) - 1
        if i >= 0 and value <= self._ends[i]:
            return self._values[i]
        return None

    def nbytes(self) -> int:
        total = 0
        for seq in (self._starts, self._ends, self._values):
            if isinstance(seq, array):
                total += seq.buffer_info()[1] * seq.itemsize
            else:
                total += sys.getsizeof(seq) + sum(sys.getsizeof(x) for x in seq)
        return total


class AddressIndex:
    """IPv4 and IPv6 ranges with an account id each: ``find("203.0.113.7") -> 42``."""

    def __init__(self, ranges: Iterable[tuple[IpRange, int]]):
        by_version: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for ip_range, value in ranges:
            by_version[ip_range.version].append((ip_range.start, ip_range.end, value))
        self._v4 = RangeIndex(flatten(by_version[4]), 4)
        self._v6 = RangeIndex(flatten(by_version[6]), 6)

    def __len__(self) -> int:
        return len(self._v4) + len(self._v6)

    def find(self, address: str) -> int | None:
        found = address_value(address)
        if found is None:
            return None
        version, value = found
        return (self._v4 if version == 4 else self._v6).find(value)

    def nbytes(self) -> int:
        return self._v4.nbytes() + self._v6.nbytes()


@dataclass(frozen=True)
class AsnRange:
    """One line of an ip2asn TSV file (``range_start range_end AS_number country AS_description``)."""

    range: IpRange
    asn: int
    country: str
    description: str


def read_ip2asn(lines: Iterable[str]) -> Iterator[tuple[int, AsnRange | None, str | None]]:
    """``(line number, row, problem)`` for each non-empty line of an ip2asn TSV file;
    rows for AS 0 ("Not routed") are skipped silently."""
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 5:
            yield number, None, f"expected 5 tab-separated fields (start, end, AS number, country, description), got {len(fields)}"
            continue
        try:
            ip_range = parse_range(f"{fields[0]}-{fields[1]}")
        except RangeError as exc:
            yield number, None, str(exc)
            continue
        if not fields[2].strip().isdigit():
            yield number, None, f"AS number {fields[2]!r} is not a whole number"
            continue
        asn = int(fields[2])
        if asn == 0:
            continue
        yield number, AsnRange(ip_range, asn, fields[3].strip()[:10], fields[4].strip()[:300]), None
