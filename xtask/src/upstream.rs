//! `make patches`: the layer (`kprobes/`) offered upstream, as a `git format-patch` series
//! against the 7.3 tree the project builds, with Rust twins of `samples/kprobes/`, after a fix
//! to 7.3's kprobes core (patch 1: `__register_kprobe()` returns `arm_kprobe()`'s error), an
//! exact replace in `kernel/kprobes.c` ([`Edit`], `upstream/0001.edit`).
//!
//! One source: the layer's in-tree part is files of its own, `kprobes/in_tree.rs` (which
//! becomes `rust/kernel/kprobes.rs`) and `kprobes/in_tree/*.rs` (`rust/kernel/kprobes/*.rs`),
//! which every out-of-tree build compiles as they are (`kprobes/mod.rs` declares `in_tree` and
//! re-exports it, beside the out-of-tree extras). The generator copies them, and changes only
//! paths, in code (not in comments):
//!
//! - `pub(crate)` becomes `pub` (out of tree the layer is a module of a module crate);
//! - `kernel::` becomes `crate::`;
//! - the layer's own bindings, `super::bindings` and `crate::kprobes::bindings`, become the
//!   kernel crate's `crate::bindings`;
//!
//! then runs the kernel's `rustfmt`. Doctests: a line `// doctest: upstream/<file>` (a comment,
//! so out of tree nothing is compiled for it) becomes the doctest `upstream/<file>` that KUnit
//! runs, as `///` lines with its fences, where the line stood.
//!
//! An in-tree file that names the out-of-tree build is an error, with the file and line: an
//! `rk_` name (a `cfg(rk_...)` too), a path out of the in-tree layer (`super::` in the root other
//! than `super::bindings`, `super::super::`, `crate::` other than `crate::kprobes::`,
//! `crate::kprobes::<item>` or `super::<module>` of no in-tree file), a `mod` of no in-tree file,
//! `include!`/`include_str!`. Out of tree these would compile and in tree not: the rewrite does not
//! guess.
//!
//! The samples, the C helper, the commit messages and the cover letter are in `upstream/`.

use crate::kernel::Kernel;
use crate::util::{
    cache_dir, read, repo_root, sha256_hex, try_run_logged, write, Arch, Flavor, Kver,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The in-tree layer's root, which becomes `rust/kernel/kprobes.rs`.
pub const ROOT: &str = "kprobes/in_tree.rs";

/// The in-tree layer's modules, which become `rust/kernel/kprobes/<name>.rs`.
pub const DIR: &str = "kprobes/in_tree";

/// The layer's files that go in-tree, and where: [`ROOT`] and every `.rs` file in [`DIR`].
pub fn layer(repo: &Path) -> Result<Vec<(String, String)>, String> {
    let mut v = vec![(ROOT.to_string(), "rust/kernel/kprobes.rs".to_string())];
    for name in rs_stems(&repo.join(DIR))? {
        v.push((
            format!("{DIR}/{name}.rs"),
            format!("rust/kernel/kprobes/{name}.rs"),
        ));
    }
    Ok(v)
}

/// The series' output: `build/patches/`.
pub fn out_dir() -> PathBuf {
    repo_root().join("build/patches")
}

/// The stems of the `.rs` files in `dir`, sorted.
fn rs_stems(dir: &Path) -> Result<Vec<String>, String> {
    let mut v = vec![];
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "rs") {
            if let Some(s) = p.file_stem() {
                v.push(s.to_string_lossy().into_owned());
            }
        }
    }
    v.sort();
    Ok(v)
}

/// What an in-tree file may name: the in-tree modules, the items of the in-tree root, and the
/// out-of-tree modules (to name them in errors).
pub struct Names {
    /// The modules of [`DIR`].
    pub modules: Vec<String>,
    /// The items the in-tree root defines (`fn`, `const`, `static`, `struct`, ...).
    pub root_items: Vec<String>,
    /// The out-of-tree modules: `kprobes/*.rs` but `mod.rs`.
    pub out_of_tree: Vec<String>,
}

impl Names {
    /// The layer as it is in `repo`.
    pub fn of(repo: &Path) -> Result<Names, String> {
        let root = read(&repo.join(ROOT))?;
        Ok(Names {
            modules: rs_stems(&repo.join(DIR))?,
            root_items: items(&root),
            out_of_tree: rs_stems(&repo.join("kprobes"))?
                .into_iter()
                .filter(|s| s != "mod" && s != "in_tree")
                .collect(),
        })
    }
}

/// The names of the top-level items `text` defines (no parsing: the word after an item
/// keyword at the start of a line, visibility aside).
fn items(text: &str) -> Vec<String> {
    let mut v = vec![];
    for l in text.lines() {
        let mut t = l;
        for vis in ["pub(crate) ", "pub "] {
            t = t.strip_prefix(vis).unwrap_or(t);
        }
        for kw in [
            "fn ", "const ", "static ", "struct ", "enum ", "trait ", "type ", "mod ",
        ] {
            if let Some(rest) = t.strip_prefix(kw) {
                v.push(ident(rest).to_string());
            }
        }
    }
    v
}

/// The identifier `s` starts with (empty if none).
fn ident(s: &str) -> &str {
    let n = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..n]
}

/// Replaces `word` where it is not preceded by an identifier character or `:`.
fn replace_word(line: &str, word: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let whole = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        out += &rest[..i];
        out += if whole { with } else { word };
        rest = &rest[i + word.len()..];
    }
    out + rest
}

/// The names right after each whole-word `prefix` in `line`: one, or each of a `{...}` group.
fn after(line: &str, prefix: &str) -> Vec<String> {
    let mut v = vec![];
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let whole = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        rest = &rest[i + prefix.len()..];
        if !whole {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let w = ident(part.trim());
                if !w.is_empty() {
                    v.push(w.to_string());
                }
            }
        } else {
            v.push(ident(rest).to_string());
        }
    }
    v
}

/// Why `line` of an in-tree file would not compile in tree (or not as it does out of tree),
/// if it would not. `root`: the line is in [`ROOT`].
fn out_of_tree_name(line: &str, root: bool, names: &Names) -> Option<String> {
    let is_rk = |s: &str| {
        s.match_indices("rk_").any(|(i, _)| {
            s[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    };
    if is_rk(line) || line.contains("rk-in-tree") || line.contains("rk-out-of-tree") {
        return Some("an `rk_` name, which is the out-of-tree build's".into());
    }
    if line.contains("include!") || line.contains("include_str!") {
        return Some("an `include!`: a path of this repository".into());
    }
    if line.contains("super::super") {
        return Some("a path out of the in-tree layer (`super::super`)".into());
    }
    let oot = |w: &str| names.out_of_tree.iter().any(|m| m == w);
    let in_layer = |w: &str| {
        w == "bindings"
            || names.modules.iter().any(|m| m == w)
            || names.root_items.iter().any(|m| m == w)
    };
    for w in after(line, "super::") {
        if w != "bindings" && (oot(&w) || root) {
            return Some(format!("`super::{w}`, out of the in-tree layer"));
        }
    }
    let layer_paths = after(line, "crate::kprobes::");
    for w in layer_paths.into_iter().chain(after(line, "kprobes::")) {
        if !in_layer(&w) && !w.is_empty() {
            return Some(format!("`kprobes::{w}`, which is not in the in-tree layer"));
        }
    }
    for w in after(line, "crate::") {
        if w != "kprobes" && !w.is_empty() {
            return Some(format!(
                "`crate::{w}`: the module crate's, out of tree (the kernel crate is `kernel::`)"
            ));
        }
    }
    if line.contains("$crate") {
        return Some("`$crate`: the module crate's, out of tree".into());
    }
    let t = line.trim_start();
    let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
    if let Some(rest) = t.strip_prefix("mod ") {
        let w = ident(rest);
        let inline = rest[w.len()..].trim_start().starts_with('{');
        if !inline && !names.modules.iter().any(|m| m == w) {
            return Some(format!("`mod {w}`, which is no file of {DIR}"));
        }
    }
    None
}

/// The in-tree text of one layer file (before rustfmt): `name` is its path (for errors and to
/// tell [`ROOT`]), `doctest` reads `upstream/<name>`.
pub fn in_tree(
    name: &str,
    text: &str,
    names: &Names,
    doctest: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let root = name == ROOT;
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(why) = out_of_tree_name(line, root, names) {
            return Err(format!(
                "{name}:{}: names the out-of-tree build: {why}: `{}`; in-tree files are \
                 compiled out of tree as they are, and offered upstream: move it to an \
                 out-of-tree file (kprobes/*.rs)",
                n + 1,
                line.trim()
            ));
        }
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if let Some(f) = t.strip_prefix("// doctest: ") {
            let f = f.trim();
            let file = f.strip_prefix("upstream/").ok_or_else(|| {
                format!("{name}:{}: a doctest is a file of upstream/: `{f}`", n + 1)
            })?;
            out += &format!("{indent}/// ```\n");
            for l in doctest(file)?.lines() {
                out += &if l.is_empty() {
                    format!("{indent}///\n")
                } else {
                    format!("{indent}/// {l}\n")
                };
            }
            out += &format!("{indent}/// ```\n");
        } else if t.starts_with("//") {
            out += line;
            out += "\n";
        } else {
            let mut l = line.replace("pub(crate)", "pub");
            l = replace_word(&l, "kernel::", "crate::");
            l = l.replace("crate::kprobes::bindings", "crate::bindings");
            l = replace_word(&l, "super::bindings", "crate::bindings");
            out += &l;
            out += "\n";
        }
    }
    Ok(out)
}

/// The kernel's `rustfmt` on `files` (its `.rustfmt.toml`).
fn rustfmt(src: &Path, files: &[PathBuf]) -> Result<(), String> {
    let st = Command::new("rustfmt")
        .args(["--edition", "2021", "--config-path"])
        .arg(src.join(".rustfmt.toml"))
        .args(files)
        .status()
        .map_err(|e| format!("rustfmt: {e}"))?;
    st.success()
        .then_some(())
        .ok_or_else(|| "rustfmt failed on the in-tree files".into())
}

/// Inserts `block` before the first line of `text` for which `before(line)` holds, after
/// `after_first` matched once (so the search starts inside a section); an error if none does.
fn insert(
    text: &str,
    what: &str,
    after_first: &dyn Fn(&str) -> bool,
    before: &dyn Fn(&str) -> bool,
    block: &str,
) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| after_first(l))
        .ok_or_else(|| format!("{what}: anchor not found"))?;
    let at = lines[start..]
        .iter()
        .position(|l| before(l))
        .map(|i| i + start)
        .ok_or_else(|| format!("{what}: insertion point not found"))?;
    let mut out: Vec<String> = lines[..at].iter().map(|s| s.to_string()).collect();
    out.extend(block.lines().map(String::from));
    out.extend(lines[at..].iter().map(|s| s.to_string()));
    Ok(out.join("\n") + "\n")
}

/// An exact replace in one file of the 7.3 tree (`upstream/0001.edit`, the fix of patch 1):
/// `#` comment lines, `file: <path>`, then `old:` and the lines it replaces, `new:` and the
/// lines that replace them.
pub struct Edit {
    /// The file, relative to the tree (one of [`TOUCHED`]).
    pub file: String,
    /// The lines of the pristine tree, exactly.
    pub old: String,
    /// What they become.
    pub new: String,
}

impl Edit {
    /// `text` as an edit; `what` names it in errors.
    pub fn parse(what: &str, text: &str) -> Result<Edit, String> {
        let bad = |why: &str| format!("{what}: {why} (`#` lines, `file: <path>`, `old:`, `new:`)");
        let mut lines = text.lines();
        let mut file = None;
        for l in lines.by_ref() {
            if l == "old:" {
                break;
            } else if let Some(f) = l.strip_prefix("file: ") {
                file = Some(f.trim().to_string());
            } else if !l.starts_with('#') && !l.trim().is_empty() {
                return Err(bad(&format!("unexpected line before `old:`: `{l}`")));
            }
        }
        let file = file.ok_or_else(|| bad("no `file:`"))?;
        let (mut old, mut new, mut in_new) = (String::new(), String::new(), false);
        for l in lines {
            if l == "new:" && !in_new {
                in_new = true;
            } else {
                let s = if in_new { &mut new } else { &mut old };
                *s += l;
                *s += "\n";
            }
        }
        if !in_new || old.trim().is_empty() || old == new {
            return Err(bad("no `old:` lines, no `new:`, or nothing changed"));
        }
        Ok(Edit { file, old, new })
    }

    /// `text` (the file's content) with the old lines replaced: an error unless they are in it
    /// exactly once.
    pub fn apply(&self, text: &str) -> Result<String, String> {
        match text.matches(self.old.as_str()).count() {
            1 => Ok(text.replacen(&self.old, &self.new, 1)),
            n => Err(format!(
                "{}: the old lines of upstream/0001.edit are in it {n} times, not once (the \
                 first: `{}`): the tree is not 7.3's, or the edit is out of date",
                self.file,
                self.old.lines().next().unwrap_or_default().trim()
            )),
        }
    }
}

/// `git -C dir args...` with the project's identity and a fixed date (the series is
/// reproducible).
fn git(dir: &Path, args: &[&str], ident: &(String, String, String)) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", &ident.0)
        .env("GIT_AUTHOR_EMAIL", &ident.1)
        .env("GIT_COMMITTER_NAME", &ident.0)
        .env("GIT_COMMITTER_EMAIL", &ident.1)
        .env("GIT_AUTHOR_DATE", &ident.2)
        .env("GIT_COMMITTER_DATE", &ident.2)
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Who signs the series, and when: the project's git identity and its last commit's date.
fn identity() -> (String, String, String) {
    let repo = repo_root();
    let q = |args: &[&str], default: &str| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    (
        q(&["config", "user.name"], "rust-kprobes"),
        q(&["config", "user.email"], "rust-kprobes@localhost"),
        q(&["log", "-1", "--format=%cI"], "2026-01-01T00:00:00Z"),
    )
}

/// The files of the tree the series touches, with their pristine 7.3 content.
pub const TOUCHED: [&str; 7] = [
    "MAINTAINERS",
    "kernel/kprobes.c",
    "rust/bindings/bindings_helper.h",
    "rust/helpers/helpers.c",
    "rust/kernel/lib.rs",
    "samples/rust/Kconfig",
    "samples/rust/Makefile",
];

/// A scratch repository holding the pristine versions of the touched files: the base the
/// series is made on, and applied to by the tests (`git am`).
pub fn base_repo(dir: &Path, src: &Path) -> Result<(), String> {
    let ident = identity();
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    git(dir, &["init", "-q", "-b", "base"], &ident)?;
    for f in TOUCHED {
        write(&dir.join(f), &read(&src.join(f))?)?;
    }
    git(dir, &["add", "-A"], &ident)?;
    let version = read(&cache_dir().join("src/7.3.version")).unwrap_or_default();
    git(
        dir,
        &[
            "commit",
            "-q",
            "-m",
            &format!("Linux 7.3 (linux-source-7.3 {})", version.trim()),
        ],
        &ident,
    )?;
    Ok(())
}

/// Writes the series into `build/patches/` and returns the patch files, cover letter first.
pub fn generate() -> Result<Vec<PathBuf>, String> {
    let repo = repo_root();
    let src = crate::kernel::source(Kver::V7_3)?;
    let up = repo.join("upstream");
    let out = out_dir();
    let work = out.join("git");
    base_repo(&work, &src)?;
    let ident = identity();
    let doctest = |f: &str| read(&up.join(f));
    let pristine = git(&work, &["rev-parse", "HEAD"], &ident)?;
    let edit = |f: &str, e: &dyn Fn(&str) -> Result<String, String>| -> Result<(), String> {
        let p = work.join(f);
        let t = e(&read(&p)?)?;
        write(&p, &t)
    };

    // Patch 1: the fix to the kprobes core, first (it stands alone, for stable).
    let fix = Edit::parse("upstream/0001.edit", &read(&up.join("0001.edit"))?)?;
    if !TOUCHED.contains(&fix.file.as_str()) {
        return Err(format!(
            "upstream/0001.edit: {} is not one of the files the series touches (TOUCHED)",
            fix.file
        ));
    }
    edit(&fix.file, &|t| fix.apply(t))?;
    commit(&work, &up.join("0001.msg"), &ident)?;

    // Patch 2: the abstraction.
    let names = Names::of(&repo)?;
    let mut generated = vec![];
    for (from, to) in layer(&repo)? {
        let text = in_tree(&from, &read(&repo.join(&from))?, &names, &doctest)?;
        let path = work.join(&to);
        write(&path, &text)?;
        generated.push(path);
    }
    rustfmt(&src, &generated)?;
    write(
        &work.join("rust/helpers/kprobes.c"),
        &read(&up.join("helpers_kprobes.c"))?,
    )?;
    // Each addition where the file's sorted order puts it: (file, a line inside the sorted
    // run, the first line that sorts after the addition, the addition).
    type Pred = dyn Fn(&str) -> bool;
    let sorted: [(&str, &Pred, &Pred, &str); 3] = [
        (
            "rust/kernel/lib.rs",
            &|l| l == "pub mod jump_label;",
            &|l| l.starts_with("#[cfg(CONFIG_KUNIT)]") || l == "pub mod kunit;",
            "#[cfg(all(CONFIG_KPROBES, any(CONFIG_X86_64, CONFIG_ARM64)))]\npub mod kprobes;",
        ),
        (
            "rust/helpers/helpers.c",
            &|l| l == "#include \"jump_label.c\"",
            &|l| l == "#include \"kunit.c\"",
            "#include \"kprobes.c\"",
        ),
        (
            "rust/bindings/bindings_helper.h",
            &|l| l == "#include <linux/jump_label.h>",
            &|l| l.starts_with("#include <linux/") && l > "#include <linux/kprobes.h>",
            "#include <linux/kprobes.h>",
        ),
    ];
    for (file, inside, after, block) in sorted {
        edit(file, &|t| insert(t, file, inside, after, block))?;
    }
    let maintainers =
        read(&up.join("MAINTAINERS"))?.replace("@AUTHOR@", &format!("{} <{}>", ident.0, ident.1));
    let title = maintainers.lines().next().unwrap_or_default().to_string();
    let layer_entry: String = maintainers
        .lines()
        .filter(|l| !l.contains("samples/"))
        .map(|l| format!("{l}\n"))
        .collect();
    edit("MAINTAINERS", &|t| {
        insert(
            t,
            "MAINTAINERS",
            &|l| l == "KPROBES",
            &|l| !l.is_empty() && !l.contains(":\t") && l > title.as_str(),
            &format!("{layer_entry}\n"),
        )
    })?;
    commit(&work, &up.join("0002.msg"), &ident)?;

    // Patch 3: the samples.
    for s in ["rust_kprobe_example.rs", "rust_kretprobe_example.rs"] {
        let text = read(&up.join(s))?.replace("@AUTHOR@", &ident.0);
        write(&work.join("samples/rust").join(s), &text)?;
    }
    rustfmt(
        &src,
        &[
            work.join("samples/rust/rust_kprobe_example.rs"),
            work.join("samples/rust/rust_kretprobe_example.rs"),
        ],
    )?;
    edit("samples/rust/Kconfig", &|t| {
        insert(
            t,
            "samples/rust/Kconfig",
            &|l| l.starts_with("config SAMPLE_RUST_"),
            &|l| l == "config SAMPLE_RUST_MINIMAL",
            &read(&up.join("Kconfig"))?,
        )
    })?;
    edit("samples/rust/Makefile", &|t| {
        insert(
            t,
            "samples/rust/Makefile",
            &|l| l.starts_with("obj-$(CONFIG_SAMPLE_RUST_"),
            &|l| l.starts_with("obj-$(CONFIG_SAMPLE_RUST_MINIMAL)"),
            "obj-$(CONFIG_SAMPLE_RUST_KPROBE)\t\t+= rust_kprobe_example.o\n\
             obj-$(CONFIG_SAMPLE_RUST_KRETPROBE)\t\t+= rust_kretprobe_example.o",
        )
    })?;
    let sample_lines: Vec<&str> = maintainers
        .lines()
        .filter(|l| l.contains("samples/"))
        .collect();
    edit("MAINTAINERS", &|t| {
        let mut v: Vec<String> = t.lines().map(String::from).collect();
        let start = v
            .iter()
            .position(|l| *l == title)
            .ok_or("MAINTAINERS: the entry of patch 2 is gone")?;
        let end = v[start..]
            .iter()
            .position(|l| l.is_empty())
            .map(|i| i + start)
            .ok_or("MAINTAINERS: the entry does not end")?;
        for s in sample_lines.iter().rev() {
            v.insert(end, s.to_string());
        }
        Ok(v.join("\n") + "\n")
    })?;
    commit(&work, &up.join("0003.msg"), &ident)?;

    // The series, cover letter first.
    for e in fs::read_dir(&out).map_err(|e| format!("{}: {e}", out.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "patch") {
            fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let listed = git(
        &work,
        &[
            "format-patch",
            "--cover-letter",
            "--no-signature",
            "-o",
            out.to_str().ok_or("non-UTF-8 path")?,
            &format!("{}..base", pristine.trim()),
        ],
        &ident,
    )?;
    let patches: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    let cover = patches
        .first()
        .ok_or("git format-patch wrote nothing")?
        .clone();
    let letter = read(&up.join("cover-letter.txt"))?;
    let (subject, blurb) = letter
        .split_once("\n\n")
        .ok_or("upstream/cover-letter.txt: a subject line, a blank line, then the text")?;
    let c = read(&cover)?
        .replace("*** SUBJECT HERE ***", subject.trim())
        .replace("*** BLURB HERE ***", blurb.trim_end());
    write(&cover, &c)?;
    Ok(patches)
}

/// Commits everything in `dir` with the message in `msg` (its first line the subject) and a
/// `Signed-off-by:` of the project's identity: in the message's last paragraph if that is its
/// tags (`Fixes:`, `Cc:`), a paragraph of its own otherwise.
fn commit(dir: &Path, msg: &Path, ident: &(String, String, String)) -> Result<(), String> {
    git(dir, &["add", "-A"], ident)?;
    let m = read(msg)?;
    let m = m.trim_end();
    let is_tag = |l: &str| {
        l.split_once(": ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let tags = m
        .rsplit_once("\n\n")
        .is_some_and(|(_, last)| last.lines().all(is_tag));
    let m = format!(
        "{m}{}Signed-off-by: {} <{}>\n",
        if tags { "\n" } else { "\n\n" },
        ident.0,
        ident.1
    );
    git(dir, &["commit", "-q", "-m", &m], ident)?;
    Ok(())
}

/// What the patched kernel enables besides the 7.3 kernel's own configuration: the doctests
/// as KUnit tests, and the samples as modules. And `SCHEDSTATS`, as distributions have it:
/// without it `struct sched_statistics` is an empty `____cacheline_aligned` struct that
/// bindgen lays out without its alignment, so every `task_struct` field after it is 16 bytes
/// off in `kernel::bindings` on x86_64, and 7.3's own `Task::pid()` returns garbage (the
/// samples printed `pid:-2130312624`; the cover letter reports it).
pub const CONFIG: &str = "CONFIG_SCHEDSTATS=y
CONFIG_KUNIT=y
CONFIG_RUST_KERNEL_DOCTESTS=y
CONFIG_SAMPLES=y
CONFIG_SAMPLES_RUST=y
CONFIG_SAMPLE_RUST_KPROBE=m
CONFIG_SAMPLE_RUST_KRETPROBE=m
";

/// What is compiled for architectures other than x86_64 (which builds and boots the whole
/// kernel).
pub const COMPILED: [&str; 3] = [
    "rust/kernel.o",
    "samples/rust/rust_kprobe_example.o",
    "samples/rust/rust_kretprobe_example.o",
];

/// The series' patches (no cover letter), in order.
pub fn patches() -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = fs::read_dir(out_dir())
        .map_err(|e| format!("{}: {e}: run `make patches`", out_dir().display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "patch")
                && !p.to_string_lossy().ends_with("0000-cover-letter.patch")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The entries of `dir` whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let mut v = vec![];
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        {
            v.push(p);
        }
    }
    Ok(v)
}

/// The patched 7.3 kernel of `flavor`: its build tree (a copy of the 7.3 kernel's, rebuilt
/// for what the series and [`CONFIG`] change) and source (hard links to the pristine tree, the
/// touched files copied, the series applied with `git apply`), cached under the series'
/// hash. The build logs are `build.log` (with `CLIPPY=1`), `rustdoc.log`, `rustfmtcheck.log`.
///
/// The build runs in a private mount namespace with the patched source and the new build tree
/// mounted over the 7.3 kernel's own paths: Kbuild then sees the command lines it recorded and
/// rebuilds only what the series and the configuration changed.
pub fn kernel(flavor: &Flavor) -> Result<Kernel, String> {
    let base = crate::kernel::ensure(&repo_root(), flavor)?;
    let series = patches()?;
    // The series' content, not its mail headers (dates, commit ids): the tree it produces. The
    // source depends on it alone (one for every architecture), a build on the base too.
    let tree = git(
        &out_dir().join("git"),
        &["rev-parse", "HEAD^{tree}"],
        &identity(),
    )?;
    let src_key = sha256_hex(&tree)[..16].to_string();
    let key = sha256_hex(&format!("{}\n{CONFIG}{tree}", base.dir.display()))[..16].to_string();
    let prefix = format!("{}-upstream-", flavor.name());
    let dir = cache_dir().join("kernel").join(format!("{prefix}{key}"));
    let src = cache_dir()
        .join("src")
        .join(format!("linux-7.3-upstream-{src_key}"));
    let k = Kernel {
        image: dir.join(flavor.arch.image_path()),
        dir: dir.clone(),
        src: src.clone(),
        in_debian: false,
    };
    if dir.join(".built").exists() {
        return Ok(k);
    }
    // A previous series' build on the same base is where this one starts (only what the change
    // touched is rebuilt); the 7.3 kernel's own build otherwise.
    let mut previous = None;
    for p in named(&cache_dir().join("kernel"), &prefix)? {
        let same_base = read(&p.join(".base")).is_ok_and(|b| b == base.dir.display().to_string());
        if p == dir {
            continue;
        } else if same_base && p.join(".built").exists() && previous.is_none() {
            previous = Some(p);
        } else {
            let _ = fs::remove_dir_all(&p);
        }
    }
    for p in named(&cache_dir().join("src"), "linux-7.3-upstream-")? {
        if p != src {
            let _ = fs::remove_dir_all(&p);
        }
    }
    let sh = |script: &str, args: &[&Path]| -> Result<(), String> {
        let st = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .arg("sh")
            .args(args)
            .status()
            .map_err(|e| format!("sh: {e}"))?;
        st.success()
            .then_some(())
            .ok_or_else(|| format!("failed: {script}"))
    };
    if !src.join(".applied").exists() {
        eprintln!("upstream: applying the series to a copy of the 7.3 tree");
        sh("rm -rf \"$2\"; cp -al \"$1\" \"$2\"", &[&base.src, &src])?;
        for f in TOUCHED {
            let (from, to) = (base.src.join(f), src.join(f));
            fs::remove_file(&to).map_err(|e| format!("{}: {e}", to.display()))?;
            fs::copy(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        for p in &series {
            let out = git_apply(&src, "--whitespace=error-all", p)?;
            if !out.status.success() {
                return Err(format!(
                    "{} does not apply to the 7.3 tree: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        fs::write(src.join(".applied"), "").map_err(|e| e.to_string())?;
    }
    let started = std::time::Instant::now();
    eprintln!(
        "upstream: building the patched 7.3 kernel ({}) with CLIPPY=1 in {} (what the series \
         and its KUnit/samples options change; log: build.log there)",
        flavor.name(),
        dir.display()
    );
    // Every file the series writes is made newer than anything the base build generated: the
    // copy of the source may be older than this architecture's base build (one copy serves
    // every architecture), and make decides by mtime (an arm64 base built after the copy kept
    // its stale `bindings_helpers_generated.rs`, without the series' helper).
    for p in &series {
        let out = git_apply(&src, "--numstat", p)?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(path) = line.split('\t').nth(2) {
                sh("touch \"$1\"", &[&src.join(path)])?;
            }
        }
    }
    let from = previous.as_deref().unwrap_or(&base.dir);
    sh(
        "rm -rf \"$2\"; cp -a \"$1\" \"$2\"; rm -f \"$2\"/.built \"$2\"/*.log",
        &[from, &dir],
    )?;
    if let Some(p) = &previous {
        let _ = fs::remove_dir_all(p);
    }
    fs::write(dir.join(".base"), base.dir.display().to_string()).map_err(|e| e.to_string())?;
    let frag = dir.join("upstream.fragment");
    fs::write(&frag, CONFIG).map_err(|e| e.to_string())?;
    let libclang = flavor.kernel.libclang_path()?;
    let log = dir.join("build.log");
    let ns = |args: Vec<String>, log: &Path, what: &str| -> Result<(), String> {
        let mut a: Vec<String> = vec![
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-ec".into(),
            "mount --bind \"$1\" \"$2\"; mount --bind \"$3\" \"$4\"; shift 4; exec \"$@\"".into(),
            "sh".into(),
        ];
        for p in [&src, &base.src, &dir, &base.dir] {
            a.push(p.display().to_string());
        }
        a.extend(args);
        try_run_logged("unshare", &a, log, what)
    };
    let mk = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "make".to_string(),
            "-C".into(),
            base.src.display().to_string(),
            format!("O={}", base.dir.display()),
        ];
        a.extend(flavor.make_vars());
        a.push(format!("LIBCLANG_PATH={}", libclang.display()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    ns(
        vec![
            base.src
                .join("scripts/kconfig/merge_config.sh")
                .display()
                .to_string(),
            "-m".into(),
            "-O".into(),
            base.dir.display().to_string(),
            base.dir.join(".config").display().to_string(),
            base.dir.join("upstream.fragment").display().to_string(),
        ],
        &log,
        "merge_config",
    )?;
    ns(mk(&["olddefconfig"]), &log, "olddefconfig")?;
    let config = read(&dir.join(".config"))?;
    let lost: Vec<&str> = CONFIG
        .lines()
        .filter(|l| !config.lines().any(|c| c == *l))
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "the patched kernel's config dropped {}",
            lost.join(", ")
        ));
    }
    let jobs = format!(
        "-j{}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    );
    if flavor.arch == Arch::X86_64 {
        ns(
            mk(&[&jobs, "CLIPPY=1", "all"]),
            &log,
            "patched kernel build",
        )?;
        // Their findings are the tests' to judge (`xtask/tests/upstream.rs`), from the logs.
        let _ = ns(
            mk(&["rustfmtcheck"]),
            &dir.join("rustfmtcheck.log"),
            "make rustfmtcheck",
        );
        let _ = ns(
            mk(&[&jobs, "rustdoc"]),
            &dir.join("rustdoc.log"),
            "make rustdoc",
        );
    } else {
        // Other architectures: the kernel crate and the samples compiled (with clippy), not
        // the whole kernel: what differs per architecture is Rust code (`arch.rs`).
        let mut t = vec![jobs.as_str(), "CLIPPY=1"];
        t.extend(COMPILED);
        ns(mk(&t), &log, "patched kernel crate and samples")?;
    }
    fs::write(dir.join(".built"), "").map_err(|e| e.to_string())?;
    let t = started.elapsed().as_secs();
    eprintln!(
        "upstream: patched 7.3 kernel ({}) built in {} min {} s",
        flavor.name(),
        t / 60,
        t % 60
    );
    Ok(k)
}

/// `git apply <opt> <patch>` in `dir`, its output whatever the status.
fn git_apply(dir: &Path, opt: &str, patch: &Path) -> Result<std::process::Output, String> {
    Command::new("git")
        .args(["apply", opt])
        .arg(patch)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("git apply {opt}: {e}"))
}

/// The patched kernel's initramfs: the harness's, with the two samples as modules.
pub fn initramfs_path(flavor: &Flavor) -> PathBuf {
    crate::util::build_dir(flavor).join("upstream-initramfs.cpio")
}

/// Everything the upstream tests need, for `flavor` (x86_64 7.3): the series, the patched
/// kernel (cached) and its initramfs.
pub fn prepare(flavor: &Flavor) -> Result<Kernel, String> {
    generate()?;
    let k = kernel(flavor)?;
    if flavor.arch != Arch::X86_64 {
        return Ok(k);
    }
    let samples: Vec<PathBuf> = ["rust_kprobe_example.ko", "rust_kretprobe_example.ko"]
        .iter()
        .map(|m| k.dir.join("samples/rust").join(m))
        .collect();
    crate::initramfs::build_at(&k, flavor, &samples, &initramfs_path(flavor))?;
    Ok(k)
}

/// The patched kernel's build tree as `prepare` left it, for the tests.
pub fn built_dir(flavor: &Flavor) -> Result<PathBuf, String> {
    named(
        &cache_dir().join("kernel"),
        &format!("{}-upstream-", flavor.name()),
    )?
    .into_iter()
    .find(|p| p.join(".built").exists())
    .ok_or_else(|| {
        format!(
            "no patched {} kernel built: run `make check{}`",
            flavor.name(),
            if flavor.debug { " DEBUG=1" } else { "" }
        )
    })
}

/// The patched kernel as `prepare` left it, for the VM tests (x86_64).
pub fn prepared(flavor: Flavor) -> Result<crate::vm::Prepared, String> {
    let dir = built_dir(&flavor)?;
    let src = fs::canonicalize(dir.join("source")).unwrap_or_default();
    Ok(crate::vm::Prepared {
        kernel: Kernel {
            image: dir.join(flavor.arch.image_path()),
            dir,
            src,
            in_debian: false,
        },
        flavor,
        initramfs: initramfs_path(&flavor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_doctest(f: &str) -> Result<String, String> {
        Err(format!("no doctest {f}"))
    }

    fn names() -> Names {
        Names {
            modules: vec!["arch".into(), "hit".into(), "kprobe".into()],
            root_items: vec!["now_ns".into()],
            out_of_tree: vec!["compat".into(), "debugfs".into(), "percpu".into()],
        }
    }

    #[test]
    fn paths_are_rewritten_in_code_only() {
        let t = "//! `kernel::x` and pub(crate) in a comment\n\
                 use super::bindings;\n\
                 use super::bindings::{self, pt_regs};\n\
                 use crate::kprobes::bindings::kprobe;\n\
                 pub(crate) fn f() -> kernel::ffi::c_int {}\n\
                 pub(in crate::kprobes) fn g() {}\n";
        assert_eq!(
            in_tree("kprobes/in_tree/kprobe.rs", t, &names(), &no_doctest).unwrap(),
            "//! `kernel::x` and pub(crate) in a comment\n\
             use crate::bindings;\n\
             use crate::bindings::{self, pt_regs};\n\
             use crate::bindings::kprobe;\n\
             pub fn f() -> crate::ffi::c_int {}\n\
             pub(in crate::kprobes) fn g() {}\n"
        );
    }

    #[test]
    fn out_of_tree_names_are_errors() {
        for (file, t) in [
            ("kprobes/in_tree/arch.rs", "#[cfg(rk_x86_pcpu_hot)]\n"),
            ("kprobes/in_tree/arch.rs", "/// reads `rk_layout`\n"),
            ("kprobes/in_tree/arch.rs", "// rk-out-of-tree-begin\n"),
            (
                "kprobes/in_tree/probe.rs",
                "let x = super::compat::cstr_bytes(s);\n",
            ),
            ("kprobes/in_tree/probe.rs", "use super::{debugfs, hit};\n"),
            ("kprobes/in_tree/probe.rs", "use super::super::why;\n"),
            (
                "kprobes/in_tree/probe.rs",
                "let p = crate::kprobes::SymbolOffset::of(a);\n",
            ),
            ("kprobes/in_tree/probe.rs", "use crate::bindings;\n"),
            ("kprobes/in_tree/probe.rs", "$crate::kprobes::hit::Hit\n"),
            (
                "kprobes/in_tree/probe.rs",
                "#[doc = include_str!(\"x.md\")]\n",
            ),
            ("kprobes/in_tree.rs", "pub(crate) mod percpu;\n"),
            ("kprobes/in_tree.rs", "use super::SymbolOffset;\n"),
        ] {
            let r = in_tree(file, t, &names(), &no_doctest);
            assert!(r.is_err(), "{file}: {t}: {r:?}");
        }
    }

    #[test]
    fn in_tree_names_pass() {
        for (file, t) in [
            ("kprobes/in_tree.rs", "pub(crate) mod hit;\n"),
            ("kprobes/in_tree.rs", "use super::bindings;\n"),
            ("kprobes/in_tree/hit.rs", "use super::arch::Regs;\n"),
            ("kprobes/in_tree/hit.rs", "super::now_ns()\n"),
            ("kprobes/in_tree/hit.rs", "crate::kprobes::kprobe::Step\n"),
            ("kprobes/in_tree/arch.rs", "mod imp {\n"),
            ("kprobes/in_tree/arch.rs", "r as u8 != 0 // park_it\n"),
        ] {
            let r = in_tree(file, t, &names(), &no_doctest);
            assert!(r.is_ok(), "{file}: {t}: {r:?}");
        }
    }

    #[test]
    fn doctest_is_inlined() {
        let t = "    // doctest: upstream/d.rs\n";
        let d = |f: &str| {
            assert_eq!(f, "d.rs");
            Ok::<_, String>("let a = 1;\n\nassert_eq!(a, 1);\n".to_string())
        };
        assert_eq!(
            in_tree("kprobes/in_tree/kprobe.rs", t, &names(), &d).unwrap(),
            "    /// ```\n    /// let a = 1;\n    ///\n    /// assert_eq!(a, 1);\n    /// ```\n"
        );
        assert!(in_tree(
            "kprobes/in_tree/kprobe.rs",
            "// doctest: d.rs\n",
            &names(),
            &d
        )
        .is_err());
    }

    #[test]
    fn edit_replaces_its_lines_once_or_fails() {
        let e = Edit::parse(
            "t.edit",
            "# a comment\nfile: kernel/kprobes.c\nold:\n\tfoo();\n\treturn 0;\nnew:\n\tfoo();\n\treturn ret;\n",
        )
        .unwrap();
        assert_eq!(e.file, "kernel/kprobes.c");
        assert_eq!(
            e.apply("{\n\tfoo();\n\treturn 0;\n}\n").unwrap(),
            "{\n\tfoo();\n\treturn ret;\n}\n"
        );
        for text in [
            "{\n\tfoo();\n}\n",
            "\tfoo();\n\treturn 0;\n\tfoo();\n\treturn 0;\n",
        ] {
            let r = e.apply(text);
            assert!(
                r.as_ref()
                    .is_err_and(|m| m.starts_with("kernel/kprobes.c: ")),
                "{text:?}: {r:?}"
            );
        }
        for bad in [
            "old:\na\nnew:\nb\n",
            "file: f\nold:\na\nb\n",
            "file: f\nold:\nnew:\nb\n",
            "file: f\nold:\na\nnew:\na\n",
            "file: f\nstray\nold:\na\nnew:\nb\n",
        ] {
            assert!(Edit::parse("t.edit", bad).is_err(), "{bad:?}");
        }
    }

    /// The fix of patch 1 parses, edits a file the series touches, and adds a `return ret;`.
    #[test]
    fn the_fix_is_an_edit_of_kprobes_c() {
        let e = Edit::parse(
            "0001.edit",
            &read(&repo_root().join("upstream/0001.edit")).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.file, "kernel/kprobes.c");
        assert!(TOUCHED.contains(&e.file.as_str()));
        assert_eq!(e.new.replacen("\t\t\treturn ret;\n", "", 1), e.old);
    }

    /// The layer as it is: every in-tree file translates, and every doctest it names exists.
    #[test]
    fn the_layer_translates() {
        let repo = repo_root();
        let up = repo.join("upstream");
        let names = Names::of(&repo).unwrap();
        for m in ["arch", "hit", "kprobe", "kretprobe", "probe"] {
            assert!(
                names.modules.iter().any(|n| n == m),
                "{m}: {:?}",
                names.modules
            );
        }
        for (from, _) in layer(&repo).unwrap() {
            let text = read(&repo.join(&from)).unwrap();
            in_tree(&from, &text, &names, &|f| read(&up.join(f))).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
