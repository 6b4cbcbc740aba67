#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Writes the module crates into the rust-project.json the kernel's generate_rust_analyzer.py wrote.

The kernel's script takes as a crate every .rs under the external module's directory whose name
a Kbuild or Makefile beside it mentions as `<name>.o`. This Kbuild names no module (it finds
them, see its rk_modules), and the harness's copies under build/*/src/ carry a Kbuild of their
own. So every crate rooted in this directory is dropped, and one crate is added per module
Kbuild builds: each top-level <name>.rs that declares `kprobes::compat::rk_module!` (the kprobes/
layer is part of each, through #[path]). A module crate is shaped as the kernel's script shapes
an external one: the kernel crate's cfgs, plus the --cfg flags Kbuild passed to its rustc (read
from the in-place build's .<name>_rs.o.cmd: rk_* and whatever else the Kbuild adds), and as deps
core, kernel and, where the tree has them, pin_init and zerocopy (7.3's list). rust-analyzer is
kept from indexing build/ and target/.

usage: rust-project.py <module dir>     (rewrites <module dir>/rust-project.json)
"""

import json
import re
import shlex
import sys
from pathlib import Path

# What Kbuild greps for (rk_modules).
MODULE_MARK = re.compile(r"^kprobes::compat::rk_module!", re.M)
# The crates the kernel's script makes an external crate depend on, those the tree has.
MODULE_DEPS = ["core", "kernel", "pin_init", "zerocopy", "zerocopy_derive"]


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

    modules = sorted(p.stem for p in root.glob("*.rs")
                     if MODULE_MARK.search(p.read_text(errors="replace")))
    if not modules:
        fail(f"{root}: no <name>.rs declares kprobes::compat::rk_module!")
    crates = project["crates"]
    keep = []
    for i, c in enumerate(crates):
        # 7.3's generator names the external crates relative to the module directory.
        r = root / c["root_module"]
        c["root_module"] = str(r)
        if not r.is_relative_to(root):
            keep.append(i)  # a copy under build/*/src/ or anything else here is dropped
    index = {old: new for new, old in enumerate(keep)}
    out = []
    for old in keep:
        c = dict(crates[old])
        for d in c["deps"]:
            if d["crate"] not in index:
                fail(f"{path}: {c['display_name']} depends on a dropped crate")
        c["deps"] = [dict(d, crate=index[d["crate"]]) for d in c["deps"]]
        out.append(c)

    by_name = {c["display_name"]: i for i, c in enumerate(out)}
    if "kernel" not in by_name or "core" not in by_name:
        fail(f"{path}: no kernel or core crate (did the kernel's generator run?)")
    kernel = out[by_name["kernel"]]
    for name in modules:
        extra = kbuild_cfgs(root / f".{name}_rs.o.cmd")
        out.append({
            "display_name": name,
            "root_module": str(root / f"{name}.rs"),
            "is_workspace_member": True,
            "deps": [{"crate": by_name[d], "name": d} for d in MODULE_DEPS if d in by_name],
            "cfg": list(kernel["cfg"]) + [x for x in extra if x not in kernel["cfg"]],
            "edition": "2021",
            "env": {"RUST_MODFILE": "This is only for rust-analyzer"},
            "source": {
                "include_dirs": [str(root)],
                "exclude_dirs": [str(root / "build"), str(root / "target")],
            },
        })

    project["crates"] = out
    path.write_text(json.dumps(project, sort_keys=True, indent=4) + "\n")
    rk = sorted({x for c in out[-len(modules):] for x in c["cfg"] if x.startswith("rk_")})
    print(f"rust-project.json: modules {' '.join(modules)} "
          f"({len(crates) - len(keep)} crates under {root} dropped), "
          f"with {' '.join(rk) or 'no rk_* cfg'}")


if __name__ == "__main__":
    main()
