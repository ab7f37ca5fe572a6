"""Mark a version requirement of an ELF shared library as weak (VER_FLG_WEAK).

    python weak_version.py libtchecker.so GLIBC_2.38

The dynamic loader refuses a library that needs a symbol version its libc lacks, even when
every symbol of that version has been rebound elsewhere; a weak requirement is only reported.
Used by .ci/install_tchecker.sh after the symbols of that version are given to a shim library.
Prints how many requirements were changed; exits 1 if none matched.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def weaken(data: bytearray, version: bytes) -> int:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    changed = 0
    for _name, kind, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strtab = sections[link][4]
        pos = offset
        for _ in range(info):  # Elf64_Verneed entries
            _ver, count, _file, aux, following = struct.unpack_from("<HHIII", data, pos)
            apos = pos + aux
            for _ in range(count):  # Elf64_Vernaux entries
                _hash, flags, _other, name, nxt = struct.unpack_from("<IHHII", data, apos)
                start = strtab + name
                if bytes(data[start : data.index(0, start)]) == version:
                    struct.pack_into("<H", data, apos + 4, flags | VER_FLG_WEAK)
                    changed += 1
                apos += nxt
            pos += following
    return changed


def main() -> int:
    path, version = Path(sys.argv[1]), sys.argv[2].encode()
    data = bytearray(path.read_bytes())
    changed = weaken(data, version)
    path.write_bytes(bytes(data))
    print(changed)
    return 0 if changed else 1


if __name__ == "__main__":
    sys.exit(main())
