#!/usr/bin/env python3
"""Checks that kestrel is a static ELF (no PT_INTERP) within a size budget.

usage: check_static.py BINARY MAX_BYTES
"""
import os
import struct
import sys

PT_INTERP = 3


def main() -> int:
    path, limit = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        print(f"{path}: not an ELF file")
        return 1
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            print(f"{path}: dynamically linked (has PT_INTERP): kestrel must be static")
            return 1
    size = os.path.getsize(path)
    print(f"{path}: static, {size} bytes ({size / 1024:.1f} KiB), budget {limit} bytes")
    if size > limit:
        print(f"{path}: too big: {size} > {limit} bytes")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
