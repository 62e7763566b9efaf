#!/usr/bin/env python3
"""Pack a folder into one fuzz input, or unpack one (the format of tests/fuzz/fuzz_targets.hpp).

  pack.py pack FOLDER OUT     every file of FOLDER (and of its sub-folders one level down)
  pack.py unpack INPUT FOLDER the files of a packed input, to look at a crash
"""
import os
import sys


def pack(folder, out):
    entries = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            for inner in sorted(os.listdir(path)):
                if os.path.isfile(os.path.join(path, inner)):
                    entries.append(name + "/" + inner)
        elif os.path.isfile(path):
            entries.append(name)
    with open(out, "wb") as f:
        for i, name in enumerate(entries):
            f.write(("" if i == 0 else "\n").encode() + b"@@file " + name.encode() + b"\n")
            with open(os.path.join(folder, name), "rb") as g:
                f.write(g.read())


def unpack(data_path, folder):
    data = open(data_path, "rb").read()
    header, separator = b"@@file ", b"\n@@file "
    at = 0 if data.startswith(header) else data.find(separator) + 1
    while at > 0 or data.startswith(header) and at == 0:
        name_end = data.find(b"\n", at + len(header))
        if name_end < 0:
            break
        name = data[at + len(header):name_end].decode(errors="replace")
        nxt = data.find(separator, name_end)
        body = data[name_end + 1:] if nxt < 0 else data[name_end + 1:nxt]
        target = os.path.join(folder, name)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "wb") as f:
            f.write(body)
        if nxt < 0:
            break
        at = nxt + 1


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit(__doc__)
    (pack if sys.argv[1] == "pack" else unpack)(sys.argv[2], sys.argv[3])
