"""Reading a CSV file as CRMs and spreadsheets write them: encoding, delimiter, rows and bytes read."""

from __future__ import annotations

import codecs
import csv
import functools
import io
from collections.abc import Iterator
from typing import BinaryIO

SNIFF_BYTES = 64 * 1024


def _utf8_then_cp1252(exc: UnicodeDecodeError):
    """Decoding error handler: a byte that is not UTF-8 is read as Windows-1252."""
    bad = exc.object[exc.start:exc.start + 1]
    return bad.decode("cp1252", errors="_abm_latin1"), exc.start + 1


def _latin1(exc: UnicodeDecodeError):
    # The five bytes Windows-1252 leaves undefined are read as Latin-1 control characters.
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


@functools.cache
def register_decoding_fallbacks() -> None:
    """Register the two decoding error handlers above with :mod:`codecs`, once, when a file is first read.

    Not at import time: importing the module changes nothing in the process.
    """
    codecs.register_error("_abm_latin1", _latin1)
    codecs.register_error("_abm_utf8_cp1252", _utf8_then_cp1252)


class _CountingReader(io.RawIOBase):
    """A raw stream over ``prefix`` then ``stream``, counting the bytes handed out."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
        else:
            data = self._stream.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        return n


def _detect_encoding(sample: bytes) -> tuple[str, str, int]:
    """(encoding, errors handler, BOM length) from the first bytes of the file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8", "_abm_utf8_cp1252", 3
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict", 0
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252", "_abm_latin1", 0
    return "utf-8", "_abm_utf8_cp1252", 0


def _sniff_delimiter(text: str) -> str:
    """The delimiter most used, outside quotes, in the first non-blank line."""
    line, quoted = [], False
    started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if not quoted and ch in "\r\n":
            if started:
                break
            continue
        if ch.strip():
            started = True
        line.append(ch)
    counts = {d: 0 for d in (",", ";", "\t", "|")}
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class Source:
    """The rows of a CSV stream, with their spreadsheet row numbers and bytes read."""

    def __init__(self, stream: BinaryIO) -> None:
        register_decoding_fallbacks()
        sample = stream.read(SNIFF_BYTES) or b""
        encoding, errors, bom = _detect_encoding(sample)
        self.encoding = {"utf-8": "utf-8", "cp1252": "windows-1252", "utf-16": "utf-16"}[encoding]
        self.raw = _CountingReader(sample[bom:], stream)
        text = io.TextIOWrapper(io.BufferedReader(self.raw, 1 << 16), encoding=encoding,
                                errors=errors, newline="")
        head = sample[bom:].decode(encoding, errors="replace")
        self.delimiter = _sniff_delimiter(head)
        csv.field_size_limit(1 << 20)
        self._reader = csv.reader(text, delimiter=self.delimiter)
        self.row = 0

    def __iter__(self) -> Iterator[list[str]]:
        for record in self._reader:
            self.row += 1
            yield record

    @property
    def bytes_read(self) -> int:
        return self.raw.count

