#!/usr/bin/env python3
"""Writes each ```cpp block of README.md and docs/*.md as a program of its own.

usage: extract_doc_examples.py SOURCE_DIR OUT_DIR
Writes OUT_DIR/NAME.cpp and prints NAME, one line per program, for CMake. Every C++
example must be a whole program (it has a main): a fragment that cannot be built
is an example that can silently go wrong, so it is an error here."""
import glob
import os
import re
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    pages = [os.path.join(src, "README.md")] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    written = []
    for page in pages:
        with open(page) as f:
            text = f.read()
        stem = re.sub(r"[^A-Za-z0-9]+", "_", os.path.splitext(os.path.relpath(page, src))[0])
        for i, m in enumerate(re.finditer(r"^```cpp\n(.*?)^```", text, re.S | re.M)):
            line = text.count("\n", 0, m.start()) + 2
            if not re.search(r"\bint\s+main\s*\(", m.group(1)):
                sys.exit("%s:%d: a ```cpp example without main(): make it a whole program"
                         % (os.path.relpath(page, src), line))
            name = "docs_example_%s_%d" % (stem, i + 1)
            path = os.path.join(out, name + ".cpp")
            body = '#line %d "%s"\n%s' % (line, page, m.group(1))
            old = open(path).read() if os.path.exists(path) else None
            if old != body:           # unchanged programs are not rebuilt
                with open(path, "w") as f:
                    f.write(body)
            written.append(name)
    print("\n".join(written))


if __name__ == "__main__":
    main()
