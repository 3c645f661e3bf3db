"""Parquet files laid end to end into one file, without decoding a page.

A Parquet file is ``PAR1``, its row groups' column chunks (pages, already encoded and compressed), a
footer (the Thrift-encoded ``FileMetaData``: the schema, and for each row group where its column chunks
start), the footer's length and ``PAR1``. Files of the same schema are joined by copying each one's chunks
and writing one footer whose row groups are all of theirs, every offset moved by where that file's chunks
now start. scorelab's workers each encode their shard's rows of events.parquet (in parallel, where the
shard ran); the main process joins them here, at the speed of a file copy.

The footer is read and written with a small reader and writer of Thrift's compact protocol (the
encoding Parquet specifies for its metadata): every field is kept as it was read, only the offsets, row
counts and ordinals are changed. `join` refuses files whose schemas differ (`SchemaMismatch`); the caller
then decodes and writes them the ordinary way.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

MAGIC = b"PAR1"

# compact protocol types
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


class SchemaMismatch(ValueError):
    """The files do not have one schema: they cannot share a footer."""


# ------------------------------------------------------------------ Thrift compact protocol (generic)


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.at = buf, 0

    def byte(self) -> int:
        b = self.buf[self.at]
        self.at += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int) -> Any:
        if t in (TRUE, FALSE):  # a bool element of a list: one byte
            return self.byte()
        if t == BYTE:
            return self.byte()
        if t in (I16, I32, I64):
            return self.zigzag()
        if t == DOUBLE:
            v = self.buf[self.at:self.at + 8]
            self.at += 8
            return bytes(v)
        if t == BINARY:
            n = self.varint()
            v = bytes(self.buf[self.at:self.at + n])
            self.at += n
            return v
        if t in (LIST, SET):
            head = self.byte()
            n, et = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            return (et, [self.value(et) for _ in range(n)])
        if t == MAP:
            n = self.varint()
            if n == 0:
                return (0, 0, [])
            kv = self.byte()
            kt, vt = kv >> 4, kv & 0x0F
            return (kt, vt, [(self.value(kt), self.value(vt)) for _ in range(n)])
        if t == STRUCT:
            return self.struct()
        raise ValueError(f"unknown Thrift compact type {t}")

    def struct(self) -> list[list]:
        fields, last = [], 0
        while True:
            head = self.byte()
            t = head & 0x0F
            if t == STOP:
                return fields
            delta = head >> 4
            fid = last + delta if delta else self.zigzag()
            if t in (TRUE, FALSE):
                fields.append([fid, t, t == TRUE])
            else:
                fields.append([fid, t, self.value(t)])
            last = fid


class _Writer:
    def __init__(self):
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                self.out.append(b | 0x80)
            else:
                self.out.append(b)
                return

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, t: int, v: Any) -> None:
        if t in (TRUE, FALSE, BYTE):
            self.out.append(v & 0xFF)
        elif t in (I16, I32, I64):
            self.zigzag(v)
        elif t == DOUBLE:
            self.out += v
        elif t == BINARY:
            self.varint(len(v))
            self.out += v
        elif t in (LIST, SET):
            et, items = v
            if len(items) < 15:
                self.out.append((len(items) << 4) | et)
            else:
                self.out.append(0xF0 | et)
                self.varint(len(items))
            for x in items:
                self.value(et, x)
        elif t == MAP:
            kt, vt, items = v
            self.varint(len(items))
            if items:
                self.out.append((kt << 4) | vt)
                for k, x in items:
                    self.value(kt, k)
                    self.value(vt, x)
        elif t == STRUCT:
            self.struct(v)
        else:
            raise ValueError(f"unknown Thrift compact type {t}")

    def struct(self, fields: list[list]) -> None:
        last = 0
        for fid, t, v in fields:
            wire = (TRUE if v else FALSE) if t in (TRUE, FALSE) else t
            delta = fid - last
            if 0 < delta <= 15:
                self.out.append((delta << 4) | wire)
            else:
                self.out.append(wire)
                self.zigzag(fid)
            if t not in (TRUE, FALSE):
                self.value(t, v)
            last = fid
        self.out.append(STOP)


def decode(buf: bytes) -> list[list]:
    return _Reader(buf).struct()


def encode(fields: list[list]) -> bytes:
    w = _Writer()
    w.struct(fields)
    return bytes(w.out)


# ------------------------------------------------------------------ Parquet footers

# field ids of parquet.thrift
FMD_NUM_ROWS, FMD_ROW_GROUPS = 3, 4
RG_COLUMNS, RG_FILE_OFFSET, RG_ORDINAL = 1, 5, 7
CC_FILE_OFFSET, CC_META, CC_OFFSET_INDEX, CC_COLUMN_INDEX = 2, 3, 4, 6
CMD_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter


def _field(fields: list[list], fid: int) -> list | None:
    for f in fields:
        if f[0] == fid:
            return f
    return None


def footer(data) -> tuple[list[list], int]:
    """The decoded FileMetaData of a whole Parquet file's bytes, and where the footer starts."""
    mv = memoryview(data)
    if len(mv) < 12 or bytes(mv[:4]) != MAGIC or bytes(mv[-4:]) != MAGIC:
        raise ValueError("not a Parquet file (no PAR1 at both ends)")
    n = struct.unpack("<I", mv[-8:-4])[0]
    start = len(mv) - 8 - n
    return decode(bytes(mv[start:len(mv) - 8])), start


def _shift_row_group(rg: list[list], by: int, ordinal: int) -> None:
    for f in rg:
        if f[0] == RG_FILE_OFFSET:
            f[2] += by
        elif f[0] == RG_ORDINAL:
            f[2] = ordinal
        elif f[0] == RG_COLUMNS:
            for chunk in f[2][1]:
                for c in chunk:
                    if c[0] in (CC_FILE_OFFSET, CC_OFFSET_INDEX, CC_COLUMN_INDEX):
                        c[2] += by
                    elif c[0] == CC_META:
                        for m in c[2]:
                            if m[0] in CMD_OFFSETS:
                                m[2] += by


def join(parts: list, out: BinaryIO) -> int:
    """Write the Parquet files ``parts`` (bytes-like, each a whole file) to ``out`` as one file: their rows
    in order. Returns the number of rows. Raises `SchemaMismatch` when their footers differ in anything but
    the row groups and the row count (the schema, the Arrow schema, the writer)."""
    if not parts:
        raise ValueError("nothing to join")
    metas = [footer(p) for p in parts]

    def rest(fields):
        return [f for f in fields if f[0] not in (FMD_NUM_ROWS, FMD_ROW_GROUPS)]

    first = rest(metas[0][0])
    if any(rest(m) != first for m, _ in metas[1:]):
        raise SchemaMismatch("the files' schemas differ")
    row_groups: list = []
    rows, at = 0, len(MAGIC)
    out.write(MAGIC)
    for data, (meta, start) in zip(parts, metas):
        by = at - len(MAGIC)
        rgs = _field(meta, FMD_ROW_GROUPS)
        for rg in (rgs[2][1] if rgs else []):
            _shift_row_group(rg, by, len(row_groups))
            row_groups.append(rg)
        rows += _field(meta, FMD_NUM_ROWS)[2]
        body = memoryview(data)[len(MAGIC):start]
        out.write(body)
        at += len(body)
    merged = []
    for f in metas[0][0]:
        if f[0] == FMD_NUM_ROWS:
            merged.append([f[0], f[1], rows])
        elif f[0] == FMD_ROW_GROUPS:
            merged.append([f[0], f[1], (STRUCT, row_groups)])
        else:
            merged.append(f)
    if _field(merged, FMD_ROW_GROUPS) is None:  # every part without row groups: keep the field order valid
        merged.append([FMD_ROW_GROUPS, LIST, (STRUCT, row_groups)])
        merged.sort(key=lambda f: f[0])
    blob = encode(merged)
    out.write(blob)
    out.write(struct.pack("<I", len(blob)))
    out.write(MAGIC)
    return rows
