#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Trims the rust-project.json the kernel's generate_rust_analyzer.py wrote for this directory.

The kernel's script takes as a crate every .rs under the external module's directory that a
Kbuild names, which here includes the harness's copies under build/*/src/. This keeps, among the
crates rooted in this directory, only rust_kprobe.rs and rust_kretprobe.rs (the kprobes/ layer is
part of both, through #[path]), gives them the --cfg flags Kbuild passed to their rustc (read
from the in-place build's .<name>_rs.o.cmd: rk_* and whatever else the Kbuild adds) and keeps
rust-analyzer from indexing build/ and target/.

usage: rust-project.py <module dir>     (rewrites <module dir>/rust-project.json)
"""

import json
import re
import shlex
import sys
from pathlib import Path

MODULES = ["rust_kprobe", "rust_kretprobe"]


def fail(msg):
    sys.exit(f"rust-project.py: {msg}")


def kbuild_cfgs(cmd_file):
    """The --cfg flags of the rustc command line Kbuild recorded in cmd_file."""
    try:
        text = cmd_file.read_text()
    except OSError as e:
        fail(f"{cmd_file}: {e.strerror} (build in place first: make KDIR=... LLVM=...)")
    m = re.search(r"^savedcmd_\S+ := (.*)$", text, re.M)
    if not m:
        fail(f"{cmd_file}: no savedcmd line")
    # The command line is a shell pipeline; only its words matter here.
    words = shlex.split(m.group(1).replace("$$", "$"), posix=True)
    cfgs = []
    for i, w in enumerate(words):
        if w == "--cfg" and i + 1 < len(words):
            cfgs.append(words[i + 1])
        elif w.startswith("--cfg="):
            cfgs.append(w[len("--cfg="):])
    return cfgs


def main():
    if len(sys.argv) != 2:
        fail("usage: rust-project.py <module dir>")
    root = Path(sys.argv[1]).resolve()
    path = root / "rust-project.json"
    try:
        project = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")

    crates = project["crates"]
    wanted = {str(root / f"{m}.rs"): m for m in MODULES}
    keep = []
    for i, c in enumerate(crates):
        # 7.3's generator names the external crates relative to the module directory.
        r = root / c["root_module"]
        c["root_module"] = str(r)
        if r.is_relative_to(root) and str(r) not in wanted:
            continue  # a copy under build/*/src/ or anything else under this directory
        keep.append(i)
    index = {old: new for new, old in enumerate(keep)}
    out = []
    for old in keep:
        c = dict(crates[old])
        for d in c["deps"]:
            if d["crate"] not in index:
                fail(f"{path}: {c['display_name']} depends on a dropped crate")
        c["deps"] = [dict(d, crate=index[d["crate"]]) for d in c["deps"]]
        name = wanted.get(c["root_module"])
        if name:
            extra = kbuild_cfgs(root / f".{name}_rs.o.cmd")
            c["cfg"] = list(c["cfg"]) + [x for x in extra if x not in c["cfg"]]
            c["source"] = {
                "include_dirs": [str(root)],
                "exclude_dirs": [str(root / "build"), str(root / "target")],
            }
        out.append(c)

    names = [c["display_name"] for c in out]
    missing = [m for m in MODULES + ["kernel"] if m not in names]
    if missing:
        fail(f"{path}: no crate {', '.join(missing)} (is {root}/Kbuild there?)")
    project["crates"] = out
    path.write_text(json.dumps(project, sort_keys=True, indent=4) + "\n")
    rk = sorted({x for m in MODULES for c in out if c["display_name"] == m
                 for x in c["cfg"] if x.startswith("rk_")})
    print(f"rust-project.json: {len(out)} crates ({len(crates) - len(out)} copies dropped), "
          f"modules with {' '.join(rk) or 'no rk_* cfg'}")


if __name__ == "__main__":
    main()
