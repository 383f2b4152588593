//! The shared crate's modules import each other one way only: no module imports another that
//! imports it back, directly or around a circle. What two modules share lives in a module below
//! both (docs/local.md, "Layout"). Imports are `use` trees (absolute, `super::`, or a module's
//! own children) and inline `crate::` paths; a module's `pub use` of its children's items is
//! its facade, not a use of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/src")).to_path_buf()
}

/// Every module of the crate (`app::polling::poll`), with its file's code before its tests.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                walk(&e, out);
            } else if e.extension().is_some_and(|x| x == "rs") {
                out.push(e);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(src()).unwrap().with_extension("");
            let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
                segs.pop();
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (segs.join("::"), code)
        })
        .collect()
}

/// The paths a use tree names: `a::{b::C, d}` is `a::b::C` and `a::d`.
fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let body = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = [prefix, head].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join("::");
        let (mut depth, mut start) = (0, 0);
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    flatten(&base, &body[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        flatten(&base, &body[start..], out);
    } else if !tree.is_empty() {
        let name = tree.split(" as ").next().unwrap_or_default().trim();
        out.push([prefix, name].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join("::"));
    }
}

/// Which modules each module imports: every `crate::…` path, in `use` trees and inline, by
/// the longest module it names; `super::…` resolved from the module's place.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let names: BTreeSet<&String> = modules.keys().collect();
    let owner = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").collect();
        (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| names.contains(m))
    };
    let mut out = BTreeMap::new();
    for (module, code) in &modules {
        let mut paths = Vec::new();
        for statement in code.split(';') {
            let Some(at) = statement.rfind("use ") else { continue };
            if at > 0 && !statement[..at].ends_with(char::is_whitespace) {
                continue;
            }
            let tree = statement[at + 4..].trim();
            if tree.starts_with("crate::") || tree.starts_with("super::") {
                flatten("", tree, &mut paths);
                continue;
            }
            // `use child::…` from a module's own file names its child. A `pub use` of a child's
            // items is the module's facade over its children, not a use of them: not counted.
            let first = tree.split("::").next().unwrap_or_default();
            let child = if module.is_empty() { first.to_owned() } else { format!("{module}::{first}") };
            let re_export = statement[..at].trim_end().ends_with("pub") || statement[..at].trim_end().ends_with("pub(crate)");
            if !re_export && names.contains(&child) {
                flatten(&if module.is_empty() { "crate".to_owned() } else { format!("crate::{module}") }, tree, &mut paths);
            }
        }
        for piece in code.split("crate::").skip(1) {
            let path: String = piece.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(format!("crate::{}", path.trim_end_matches(':')));
        }
        let parent: Vec<&str> = module.split("::").collect();
        let mut deps = BTreeSet::new();
        for p in paths {
            let absolute = if let Some(rest) = p.strip_prefix("crate::") {
                rest.to_owned()
            } else {
                // `super` of a file module is its parent.
                let mut base = parent[..parent.len().saturating_sub(1)].to_vec();
                let mut rest = p.as_str();
                while let Some(r) = rest.strip_prefix("super::") {
                    rest = r;
                    if rest.starts_with("super::") {
                        base.pop();
                    }
                }
                base.iter().copied().chain(std::iter::once(rest)).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("::")
            };
            if let Some(m) = owner(&absolute).filter(|m| m != module) {
                deps.insert(m);
            }
        }
        out.insert(module.clone(), deps);
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let imports = imports();
    assert!(imports.len() > 100, "{} modules", imports.len());
    assert!(imports["app::polling::poll::run"].contains("sources"), "the scan sees imports: {:?}", imports["app::polling::poll::run"]);
    let mut pairs = Vec::new();
    for (a, deps) in &imports {
        for b in deps {
            if a < b && imports.get(b).is_some_and(|d| d.contains(a)) {
                pairs.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(pairs.is_empty(), "modules importing each other: {pairs:?}");
    // Nor around a longer circle: every module can be placed below all it imports.
    let mut placed: BTreeSet<&String> = BTreeSet::new();
    loop {
        let next: Vec<&String> = imports
            .iter()
            .filter(|(m, d)| !placed.contains(m) && d.iter().all(|x| placed.contains(x) || !imports.contains_key(x)))
            .map(|(m, _)| m)
            .collect();
        if next.is_empty() {
            break;
        }
        placed.extend(next);
    }
    let circle: Vec<&String> = imports.keys().filter(|m| !placed.contains(m)).collect();
    assert!(circle.is_empty(), "modules on an import circle: {circle:?}");
}
