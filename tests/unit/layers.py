#!/usr/bin/env python3
"""layers.py - fails when a layer reaches upwards: an #include of a higher layer's header, or a
call (an undefined symbol of its static library) that only a higher layer defines.

    util <- {proto, config, auth} <- net <- pool <- core <- {admin, http, health} <- main.c

Run by `meson test` (test "layers") with the source dir and the build dir."""
import os
import re
import subprocess
import sys

BELOW = {
    "util": set(),
    "proto": {"util"},
    "config": {"util"},
    "auth": {"util"},
    "net": {"util", "proto", "config"},
    "pool": {"util", "proto", "config"},
    "core": {"util", "proto", "config", "auth", "net", "pool"},
    "admin": {"util", "proto", "config", "auth", "net", "pool", "core"},
    "http": {"util", "proto", "config", "auth", "net", "pool", "core"},
    "health": {"util", "proto", "config", "auth", "net", "pool", "core"},
    "tools": {"util", "proto", "config", "auth"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def check_includes(src):
    problems = []
    for layer, allowed in BELOW.items():
        d = os.path.join(src, layer)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for m in INCLUDE.finditer(f.read()):
                    target = m.group(1)
                    if target != layer and target in BELOW and target not in allowed:
                        problems.append("%s/%s includes a header of %s (above %s)" % (layer, name, target, layer))
    return problems


def symbols(lib):
    """(defined, undefined) global symbol names of a static library."""
    out = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3}
    out = subprocess.run(["nm", "-g", "--undefined-only", lib], capture_output=True, text=True, check=True).stdout
    undefined = {l.split()[-1] for l in out.splitlines() if l.strip() and not l.endswith(":")}
    return defined, undefined


def check_symbols(build):
    libs = {}
    for layer in BELOW:
        path = os.path.join(build, "libsl_%s.a" % layer)
        if os.path.exists(path):
            libs[layer] = symbols(path)
    owner = {}
    for layer, (defined, _) in libs.items():
        for sym in defined:
            owner.setdefault(sym, layer)
    problems = []
    for layer, (defined, undefined) in libs.items():
        for sym in sorted(undefined - defined):
            o = owner.get(sym)
            if o and o != layer and o not in BELOW[layer]:
                problems.append("libsl_%s.a calls %s, defined in %s (above %s)" % (layer, sym, o, layer))
    return problems, len(libs)


def main():
    if len(sys.argv) != 3:
        print("usage: layers.py SRC_DIR BUILD_DIR", file=sys.stderr)
        return 2
    problems = check_includes(sys.argv[1])
    sym_problems, nlibs = check_symbols(sys.argv[2])
    problems += sym_problems
    if nlibs < 9:
        problems.append("only %d layer libraries found in %s" % (nlibs, sys.argv[2]))
    for p in problems:
        print(p)
    print("layers: %d problem(s), %d libraries checked" % (len(problems), nlibs))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
