//! The dependency rules of `docs/architecture.md`, checked on the source text:
//!
//! - a module imports only modules of its own layer or below (`atomic`, `num`, `fpenv`, `text` < `data`
//!   < `model` < `train` < `bundle` < `protocol` < `method` < `engine` < `session`, `signals` <
//!   `tui` < `cli`), so
//!   `data/`, `model/`, `train/` and `method/` never reach the engine, the session store, the
//!   console or the CLI, and the protocol never reaches the method or anything above it;
//! - the files of `engine/` import each other without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u32)] = &[
    ("atomic", 0),
    ("num", 0),
    ("fpenv", 0),
    ("text", 0),
    ("data", 1),
    ("model", 2),
    ("train", 3),
    ("bundle", 4),
    ("protocol", 5),
    ("method", 6),
    ("engine", 7),
    ("session", 8),
    ("signals", 8),
    ("tui", 9),
    ("cli", 10),
];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (a doc comment may name any module) and without
/// its unit tests (a test may check one layer with another's tools, e.g. the synthetic
/// stream's AUC with the metrics).
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::NAME` a text refers to, including the names of `use crate::{a::x, b}` groups.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the top level of the brace group.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            out.extend(first_ident(&item));
        } else {
            out.extend(first_ident(rest));
        }
    }
    out
}

fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let name: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The top-level module a file under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = rank(&module) else { continue };
        for target in crate_refs(&code(file)) {
            if let Some(r) = rank(&target) {
                if r > own {
                    violations.push(format!(
                        "{} imports crate::{target}, a layer above `{module}`",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_check_sees_grouped_and_plain_imports() {
    let refs =
        crate_refs("use crate::{engine::Stage, data::{Batch, split}};\nlet x = crate::tui::y;");
    let want: BTreeSet<String> = ["data", "engine", "tui"].map(String::from).into();
    assert_eq!(refs, want);
}

#[test]
fn the_files_of_the_engine_import_each_other_without_a_cycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let name = |p: &Path| p.file_stem().unwrap().to_str().unwrap().to_string();
    let names: BTreeSet<String> = files.iter().map(|p| name(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = name(file);
        if from == "mod" {
            continue;
        }
        let text = code(file);
        let mut targets = BTreeSet::new();
        for prefix in ["super::", "crate::engine::"] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                let group = rest.strip_prefix('{').unwrap_or(rest);
                let items: Vec<&str> = if rest.starts_with('{') {
                    group.split('}').next().unwrap_or("").split(',').collect()
                } else {
                    vec![group]
                };
                for item in items {
                    if let Some(t) = first_ident(item) {
                        if names.contains(&t) && t != from && t != "mod" {
                            targets.insert(t);
                        }
                    }
                }
            }
        }
        edges.insert(from, targets);
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new()) {
            panic!(
                "engine files import each other in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
}
