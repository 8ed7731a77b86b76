//! The rooms of the source tree (docs/architecture.md, "How the seams were checked"): no
//! file circle inside a crate, no source file over 600 lines, no function over 120 lines
//! outside tests. Read from the sources as text, so a change that breaks a rule fails here
//! with the files named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 7] = [
    "core", "runtime", "sim", "drivers", "models", "launch", "tests",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The module path of a file of `src`: `policy/codec.rs` → `[policy, codec]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("below src")
        .with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The file of module `path`, if it is one.
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    let base = path.iter().fold(src.to_path_buf(), |p, s| p.join(s));
    [base.with_extension("rs"), base.join("mod.rs")]
        .into_iter()
        .find(|f| f.is_file())
}

/// The code of a file without its tests and line comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths `text` names after `prefix` (`crate::` or `super::`), grouped imports
/// (`crate::{a, b::c}`) included.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        let heads: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for head in heads {
            let path: Vec<String> = head
                .trim()
                .split("::")
                .map_while(|seg| {
                    let seg: String = seg.chars().take_while(|&c| ident(c)).collect();
                    (!seg.is_empty()).then_some(seg)
                })
                .collect();
            if !path.is_empty() {
                out.push(path);
            }
        }
    }
    out
}

/// Which files of a crate each file names.
fn edges(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut g = BTreeMap::new();
    for f in rust_files(src) {
        let me = module_of(src, &f);
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let parent = &me[..me.len().saturating_sub(1)];
        let named = paths_after(&text, "crate::").into_iter().chain(
            paths_after(&text, "super::").into_iter().map(|p| {
                let mut full = parent.to_vec();
                full.extend(p);
                full
            }),
        );
        let mut to = BTreeSet::new();
        for path in named {
            if let Some(t) = (1..=path.len())
                .rev()
                .find_map(|k| file_of(src, &path[..k]))
            {
                if t != f {
                    to.insert(t);
                }
            }
        }
        g.insert(f, to);
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, start: &Path) -> Option<Vec<PathBuf>> {
    let mut stack = vec![(start.to_path_buf(), vec![start.to_path_buf()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in g.get(&at).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_file_circle_in_any_crate() {
    let mut circles = Vec::new();
    for c in CRATES {
        let g = edges(&root().join(c).join("src"));
        assert!(g.len() > 1, "{c}: no sources found");
        for f in g.keys() {
            if let Some(cycle) = cycle_from(&g, f) {
                circles.push(format!("{c}: {cycle:?}"));
            }
        }
    }
    assert!(circles.is_empty(), "file circles:\n{}", circles.join("\n"));
}

#[test]
fn the_circle_check_finds_a_circle() {
    let dir = std::env::temp_dir().join(format!("loho-layout-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::c::Thing;\n").unwrap();
    std::fs::write(src.join("b/mod.rs"), "mod c;\n").unwrap();
    std::fs::write(src.join("b/c.rs"), "use crate::{a, x};\n").unwrap();
    let g = edges(&src);
    let cycle = cycle_from(&g, &src.join("a.rs"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycle.map(|c| c.len()), Some(2), "a.rs ↔ b/c.rs");
}

#[test]
fn no_source_file_over_600_lines_nor_function_over_120() {
    let mut long = Vec::new();
    for c in CRATES {
        for dir in ["src", "tests", "benches", "examples"] {
            for f in rust_files(&root().join(c).join(dir)) {
                let text = std::fs::read_to_string(&f).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                if lines.len() > 600 {
                    long.push(format!("{}: {} lines", f.display(), lines.len()));
                }
                if dir != "src" {
                    continue;
                }
                let tests_from = lines
                    .iter()
                    .position(|l| l.trim() == "#[cfg(test)]")
                    .unwrap_or(lines.len());
                for (i, l) in lines[..tests_from].iter().enumerate() {
                    let body = l.trim_start();
                    let indent = &l[..l.len() - body.len()];
                    let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                        .iter()
                        .any(|p| body.starts_with(p));
                    if !is_fn || body.ends_with(';') {
                        continue;
                    }
                    let end = format!("{indent}}}");
                    let n = lines[i..].iter().position(|l| *l == end).map(|k| k + 1);
                    if n.is_some_and(|n| n > 120) {
                        long.push(format!("{}:{}: {} lines", f.display(), i + 1, n.unwrap()));
                    }
                }
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}
