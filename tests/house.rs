//! The house drawn from its imports: no module of `src/` imports one above it in the crate's map
//! (`src/lib.rs`), and no file imports its parent (a folder's `mod.rs` declares and re-exports;
//! what its files share sits in a file of its own). Test code is left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate's modules, bottom up, as `src/lib.rs` maps them: each may import only those before
/// it (the base ones among themselves as they do today).
const LAYERS: &[&[&str]] = &[
    &["rt"],
    &[
        "protocol",
        "stamp",
        "names",
        "stop",
        "transcript",
        "cli",
        "tls",
    ],
    &["round"],
    &["session"],
    &["close"],
    &["wire"],
    &["web"],
    &["server"],
    &["service"],
    &["client"],
    &["bench"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is not in the map"))
}

/// Every `.rs` file under `dir`, but the binaries and test files.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.ends_with("bin") {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.ends_with("tests.rs")
            && !path.to_string_lossy().ends_with("_tests.rs")
        {
            out.push(path);
        }
    }
}

/// The file's module path: `src/server/door.rs` is `["server", "door"]`, `mod.rs` its folder.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code outside `#[cfg(test)]` items and comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (brace, semi) = (after.find('{'), after.find(';'));
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            _ => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: `crate::a::b` and `super::...` (made absolute), cut at the
/// first part that is not a module.
fn references(module: &[String], code: &str, modules: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (start, _) in code.match_indices("::") {
        let head_start = code[..start]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let path = &code[head_start..];
        let path: String = path
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let absolute: Vec<String> = match parts.first() {
            Some(&"crate") => parts[1..].iter().map(|p| p.to_string()).collect(),
            Some(&"super") => {
                let ups = parts.iter().take_while(|p| **p == "super").count();
                let base = module.len().saturating_sub(ups);
                module[..base]
                    .iter()
                    .cloned()
                    .chain(parts[ups..].iter().map(|p| p.to_string()))
                    .collect()
            }
            _ => continue,
        };
        // `super::{a, b::C}`: the group's items, not the path before it.
        let after = &code[head_start + path.len()..];
        let items: Vec<Vec<String>> = match after.strip_prefix('{') {
            Some(group) if path.ends_with("::") => group[..group.find('}').unwrap_or(0)]
                .split(',')
                .filter_map(|item| item.split_whitespace().next())
                .map(|item| {
                    let item = item.split("::").filter(|p| *p != "self");
                    absolute
                        .iter()
                        .cloned()
                        .chain(item.map(str::to_owned))
                        .collect()
                })
                .collect(),
            _ => vec![absolute],
        };
        for absolute in items {
            let known = (1..=absolute.len())
                .rev()
                .map(|n| absolute[..n].to_vec())
                .find(|m| modules.contains(m));
            found.extend(known);
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it_and_no_file_its_parent() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut wrong = Vec::new();
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = code(&std::fs::read_to_string(file).unwrap());
        for used in references(&module, &text, &modules) {
            if used != module {
                edges.insert((module.clone(), used.clone()));
            }
            let name = |m: &[String]| m.join("::");
            if used.len() < module.len() && module.starts_with(&used) {
                wrong.push(format!(
                    "{} imports its parent {}",
                    name(&module),
                    name(&used)
                ));
            } else if let (Some(from), Some(to)) = (module.first(), used.first()) {
                if from != to && layer(to) > layer(from) {
                    wrong.push(format!(
                        "{} imports {}, above it",
                        name(&module),
                        name(&used)
                    ));
                }
            }
        }
    }
    wrong.extend(circle(&edges));
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A circle of files importing each other, if there is one, in words.
fn circle(edges: &BTreeSet<(Vec<String>, Vec<String>)>) -> Option<String> {
    fn visit(
        at: &Vec<String>,
        edges: &BTreeSet<(Vec<String>, Vec<String>)>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let names: Vec<String> = path[start..].iter().map(|m| m.join("::")).collect();
            return Some(format!(
                "a circle: {} -> {}",
                names.join(" -> "),
                at.join("::")
            ));
        }
        if !done.insert(at.clone()) {
            return None;
        }
        path.push(at.clone());
        let next = edges
            .iter()
            .filter(|(from, _)| from == at)
            .map(|(_, to)| to);
        let found = next.into_iter().find_map(|to| visit(to, edges, path, done));
        path.pop();
        found
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}
