"""Counting video packets in a WebM/Matroska file without starting a process.

Choosing N evenly spaced frames needs the frame count first. `ffmpeg -c copy -f null` gives it,
but a second process per video costs about as much as half the decode of a short clip. WebM is
simple enough to walk in Python: EBML elements are (ID, size, payload); video packets are the
SimpleBlocks and Blocks of the video track. The walk skips payloads by their size and parses
headers only, reading the file through a 64 KB window (memory does not grow with the file: a
4 GB file never costs 4 GB). It returns None
for anything it does not fully understand (laced blocks, several video tracks, damaged
structure), and the caller falls back to ffmpeg's count.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
SIMPLE_BLOCK = 0xA3
MASTERS = {SEGMENT, CLUSTER, TRACKS, TRACK_ENTRY, BLOCK_GROUP}
VIDEO_TRACK = 1


class _Unsupported(Exception):
    pass


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool]:
    """Variable-length integer at `pos`: (value, length in bytes, all-ones 'unknown size')."""
    if pos >= len(data) or data[pos] == 0:
        raise _Unsupported
    first = data[pos]
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise _Unsupported
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


MAX_HEADER_FIELD = 8  # bytes of a track number or type: a larger claim is damage


class _FileBytes:
    """A file's bytes, indexed and sliced like `bytes`, read on demand through a window."""

    WINDOW = 1 << 16

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = os.fstat(file.fileno()).st_size
        self.start, self.buffer = 0, b""

    def __len__(self) -> int:
        return self.size

    def _at(self, pos: int, count: int) -> int:
        """Make bytes pos..pos+count readable in the buffer; returns pos's index in it."""
        if pos < self.start or pos + count > self.start + len(self.buffer):
            self.file.seek(pos)
            self.buffer, self.start = self.file.read(max(count, self.WINDOW)), pos
        return pos - self.start

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            start, stop = key.start or 0, min(self.size, key.stop)
            if stop - start > self.WINDOW:
                raise _Unsupported  # the walk reads headers only
            first = self._at(start, max(0, stop - start))
            return self.buffer[first:first + max(0, stop - start)]
        if key >= self.size:
            raise IndexError(key)
        return self.buffer[self._at(key, 1)]


def video_packet_count(path: str | os.PathLike) -> int | None:
    """Packets of the only video track of a WebM/Matroska file, or None if not sure."""
    with open(path, "rb") as f:
        return count_video_packets(_FileBytes(f))


def count_video_packets(data: bytes | _FileBytes) -> int | None:
    """`video_packet_count` of a file's bytes."""
    try:
        return _walk(data)
    except _Unsupported:
        return None


def _walk(data: bytes | _FileBytes) -> int | None:
    if len(data) < 4 or int.from_bytes(data[:4], "big") != EBML_HEADER:
        return None
    blocks: dict[int, int] = {}
    tracks: dict[int, int] = {}  # track number -> type
    entry: dict[int, int] = {}
    stack = [len(data)]  # ends of the master elements we are inside
    pos = 0
    while pos < len(data):
        while pos >= stack[-1] and len(stack) > 1:
            stack.pop()
        element, id_length, _ = _vint(data, pos, keep_marker=True)
        size, size_length, unknown = _vint(data, pos + id_length, keep_marker=False)
        start = pos + id_length + size_length
        end = stack[-1] if unknown else start + size
        if end > len(data):
            raise _Unsupported  # truncated file: let ffmpeg decide
        if element in MASTERS:
            if element == TRACK_ENTRY:
                entry = {}
            if not unknown:
                stack.append(end)
            pos = start
            continue
        if element in (TRACK_NUMBER, TRACK_TYPE):
            if end - start > MAX_HEADER_FIELD:
                raise _Unsupported
            entry[element] = int.from_bytes(data[start:end], "big")
            if TRACK_NUMBER in entry and TRACK_TYPE in entry:
                tracks[entry[TRACK_NUMBER]] = entry[TRACK_TYPE]
        elif element in (SIMPLE_BLOCK, BLOCK):
            track, length, _ = _vint(data, start, keep_marker=False)
            # Block header: track number, 2-byte timecode, 1 flags byte, all inside the element.
            flags = start + length + 2
            if flags >= end:
                raise _Unsupported  # a block too short for its own header: damaged
            if data[flags] & 0x06:
                raise _Unsupported  # laced: several frames in one block
            blocks[track] = blocks.get(track, 0) + 1
        pos = end
    video = [number for number, kind in tracks.items() if kind == VIDEO_TRACK]
    if len(video) != 1:
        return None
    return blocks.get(video[0], 0)
