//! ARCH-1: the architecture reads one way (`docs/architecture.md`). Reads
//! the layer table there and every crate path in `src/`, and fails when a
//! module uses a higher layer, when sibling files use each other, or when a
//! file is in no layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file: its module path (`machine::inviter`, `lib` for the root)
/// and its code without comments and test-only modules.
struct File {
    module: String,
    rel: String,
    code: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `layer → modules` from the table in docs/architecture.md.
fn layer_table() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let mut table = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<usize>() else { continue };
        for m in cells[2].split(',') {
            let m = m.trim().trim_matches('`');
            assert!(!m.is_empty(), "empty module in layer {layer}");
            assert!(table.insert(m.to_owned(), layer).is_none(), "{m} is in two layers");
        }
    }
    assert!(table.len() > 10, "the layer table in docs/architecture.md was not found");
    table
}

/// Removes comments (line and doc comments; the crate has no block
/// comments in code), never a `//` inside a string.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' && !(prev == '\'' && chars.get(i + 1) == Some(&'\'')) {
                in_str = !in_str;
            }
            kept.push(c);
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Cuts every `#[cfg(test)]` item (a `mod tests { … }`, a test-only
/// function); returns the code and the test-only module files it declares
/// (`mod name;`, or the file of its `#[path = "…"]`).
fn cut_test_modules(code: &str) -> (String, Vec<String>) {
    let mut out = code.to_owned();
    let mut test_files = Vec::new();
    while let Some(at) = out.find("#[cfg(test)]") {
        let mut i = at + "#[cfg(test)]".len();
        let mut path_attr = None;
        loop {
            let trimmed = out[i..].trim_start();
            i = out.len() - trimmed.len();
            if !trimmed.starts_with("#[") {
                break;
            }
            let end = i + trimmed.find(']').unwrap() + 1;
            if let Some(v) = out[i..end].strip_prefix("#[path = ") {
                path_attr = Some(v.trim_end_matches(']').to_owned());
            }
            i = end;
        }
        let item = &out[i..];
        let mod_decl = ["mod ", "pub mod ", "pub(crate) mod "].iter().find_map(|p| item.strip_prefix(p));
        let name: Option<String> =
            mod_decl.map(|r| r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        let after_name = mod_decl.zip(name.as_ref()).map(|(r, n)| r[n.len()..].trim_start());
        let end = match (after_name, item.find('{')) {
            (Some(rest), _) if rest.starts_with(';') => {
                test_files.push(path_attr.take().unwrap_or(name.unwrap()));
                i + item.find(';').unwrap() + 1
            }
            (_, Some(b)) => {
                let open = i + b;
                let mut depth = 0usize;
                let mut end = open;
                for (k, c) in out[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                assert!(end > open, "unbalanced #[cfg(test)] item");
                end
            }
            _ => panic!("a #[cfg(test)] item with no end"),
        };
        out.replace_range(at..end, "");
    }
    (out, test_files)
}

fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && stem == "lib") {
        parts.push(stem.to_owned());
    }
    if parts.is_empty() { "lib".to_owned() } else { parts.join("::") }
}

fn source_files() -> Vec<File> {
    let mut paths = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                paths.push(p);
            }
        }
    }
    let mut files = Vec::new();
    let mut test_only = BTreeSet::new();
    for p in paths {
        let rel = p.strip_prefix(root().join("src")).unwrap().to_path_buf();
        let module = module_of(&rel);
        let (code, tests) = cut_test_modules(&strip_comments(&std::fs::read_to_string(&p).unwrap()));
        for t in tests {
            // `mod name;` is a child; `#[path = "f.rs"]` a file beside this one.
            test_only.insert(match t.strip_prefix('"') {
                Some(file) => module_of(&rel.with_file_name(file.trim_end_matches('"'))),
                None if module == "lib" => t,
                None => format!("{module}::{t}"),
            });
        }
        files.push(File { module, rel: format!("src/{}", rel.display()), code });
    }
    files.retain(|f| !test_only.contains(&f.module));
    files.sort_by(|a, b| a.module.cmp(&b.module));
    files
}

/// Expands a use tree (`a::{b, c::{d as e}}`) into paths.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let base: Vec<String> =
            tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&inner[start..]);
        let mut p = prefix.to_vec();
        p.extend(base);
        for part in parts.into_iter().filter(|s| !s.trim().is_empty()) {
            expand(part, &p, out);
        }
    } else {
        let (path, alias) = match tree.split_once(" as ") {
            Some((p, a)) => (p.trim(), a.trim().to_owned()),
            None => (tree, tree.rsplit("::").next().unwrap().trim().to_owned()),
        };
        let mut p = prefix.to_vec();
        p.extend(path.split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from));
        if p.last().is_some_and(|l| l == "self") {
            p.pop();
        }
        out.push((p, alias));
    }
}

/// Makes a path absolute (module segments from the crate root) from the
/// module it is written in; `None` for another crate.
fn absolute(path: &[String], module: &str, modules: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut here: Vec<String> = if module == "lib" { vec![] } else { module.split("::").map(String::from).collect() };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => return Some(rest[1..].to_vec()),
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                here.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.clone();
            child.push(first.to_owned());
            if !modules.contains(&child.join("::")) {
                return None;
            }
        }
        None => return None,
    }
    here.extend(rest.iter().cloned());
    Some(here)
}

struct Crate {
    files: Vec<File>,
    modules: BTreeSet<String>,
    /// `module::Name` re-exported → the absolute path it names.
    reexports: BTreeMap<String, Vec<String>>,
}

impl Crate {
    fn load() -> Self {
        let files = source_files();
        let mut modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
        // Inline modules (`pub mod prelude { … }`) count as their file.
        modules.insert("prelude".into());
        let mut reexports = BTreeMap::new();
        for f in &files {
            for (tree, public) in use_statements(&f.code) {
                if !public {
                    continue;
                }
                let mut paths = Vec::new();
                expand(&tree, &[], &mut paths);
                for (p, alias) in paths {
                    if let Some(abs) = absolute(&p, &f.module, &modules) {
                        let key = if f.module == "lib" { alias } else { format!("{}::{alias}", f.module) };
                        reexports.insert(key, abs);
                    }
                }
            }
        }
        Self { files, modules, reexports }
    }

    /// The module that defines what an absolute path names: the longest
    /// prefix that is a module or a re-export, re-exports followed.
    fn defining_module(&self, path: &[String]) -> Option<String> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let n = (1..=path.len()).rev().find(|&n| {
                let p = path[..n].join("::");
                self.reexports.contains_key(&p) || self.modules.contains(&p)
            })?;
            let prefix = path[..n].join("::");
            match self.reexports.get(&prefix) {
                Some(target) => path = target.iter().chain(&path[n..]).cloned().collect(),
                None => return Some(prefix),
            }
        }
        None
    }

    /// Every crate-internal path a file uses: `(written, defining module)`.
    fn uses(&self, f: &File) -> Vec<(String, String)> {
        let mut paths = Vec::new();
        for (tree, public) in use_statements(&f.code) {
            let mut expanded = Vec::new();
            expand(&tree, &[], &mut expanded);
            // A module publishing its own submodules' items (`pub use
            // memory::MemoryDht` in `dht`) is the module tree, not a use.
            let own: Vec<String> = f.module.split("::").map(String::from).collect();
            expanded.retain(|(p, _)| {
                !(public
                    && absolute(p, &f.module, &self.modules)
                        .is_some_and(|abs| f.module != "lib" && abs.len() > own.len() && abs.starts_with(&own)))
            });
            paths.extend(expanded);
        }
        // Paths written in code outside `use`.
        let code = without_use_statements(&f.code);
        for start in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(i) = code[from..].find(start) {
                let at = from + i;
                from = at + start.len();
                if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                    continue;
                }
                let p: String =
                    code[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
                let segs: Vec<String> =
                    p.trim_end_matches(':').split("::").filter(|s| !s.is_empty()).map(String::from).collect();
                paths.push((segs, String::new()));
            }
        }
        let mut out = Vec::new();
        for (p, _) in paths {
            let Some(abs) = absolute(&p, &f.module, &self.modules) else { continue };
            if abs.first().is_some_and(|s| s == "rand_core") {
                continue;
            }
            match self.defining_module(&abs) {
                Some(m) => out.push((p.join("::"), m)),
                None => panic!("{}: cannot tell which module `{}` is in", f.rel, p.join("::")),
            }
        }
        out
    }
}

/// `use` statements: their trees and whether they are `pub`.
fn use_statements(code: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("use ") {
        let before = &code[..i];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let lead = before[line_start..].trim();
        if !(lead.is_empty() || lead.starts_with("pub")) {
            continue;
        }
        let end = i + code[i..].find(';').unwrap();
        out.push((code[i + 4..end].to_owned(), lead.starts_with("pub")));
    }
    out
}

fn without_use_statements(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let line_start = rest[..i].rfind('\n').map_or(0, |n| n + 1);
        let lead = rest[line_start..i].trim();
        if lead.is_empty() || lead.starts_with("pub") {
            out.push_str(&rest[..i]);
            let end = i + rest[i..].find(';').unwrap() + 1;
            rest = &rest[end..];
        } else {
            out.push_str(&rest[..i + 4]);
            rest = &rest[i + 4..];
        }
    }
    out.push_str(rest);
    out
}

fn layer_of<'a>(table: &'a BTreeMap<String, usize>, module: &str) -> Option<(&'a str, usize)> {
    let segs: Vec<&str> = module.split("::").collect();
    (1..=segs.len()).rev().find_map(|n| table.get_key_value(&segs[..n].join("::")).map(|(k, v)| (k.as_str(), *v)))
}

#[test]
fn arch_every_module_uses_only_its_own_layer_or_lower_ones() {
    let table = layer_table();
    let krate = Crate::load();
    let mut violations = Vec::new();
    let mut unplaced = Vec::new();
    for f in &krate.files {
        let Some((_, own)) = layer_of(&table, &f.module) else {
            unplaced.push(f.rel.clone());
            continue;
        };
        for (written, target) in krate.uses(f) {
            let Some((name, layer)) = layer_of(&table, &target) else {
                unplaced.push(format!("{target} (used by {})", f.rel));
                continue;
            };
            if layer > own {
                violations.push(format!("{} (layer {own}) uses `{written}`: {name} is layer {layer}", f.rel));
            }
        }
    }
    assert!(unplaced.is_empty(), "modules in no layer of docs/architecture.md: {unplaced:#?}");
    assert!(violations.is_empty(), "a lower layer uses a higher one:\n{}", violations.join("\n"));
}

#[test]
fn arch_sibling_files_do_not_use_each_other() {
    let krate = Crate::load();
    // module → the sibling modules it uses (same parent, neither inside the
    // other).
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &krate.files {
        let parent = f.module.rsplit_once("::").map(|(p, _)| p.to_owned());
        for (_, target) in krate.uses(f) {
            let target_parent = target.rsplit_once("::").map(|(p, _)| p.to_owned());
            if target != f.module && parent.is_some() && parent == target_parent {
                edges.entry(f.module.clone()).or_default().insert(target);
            }
        }
    }
    // A cycle is two modules reachable from each other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for (m, targets) in &edges {
        for t in targets {
            if reach(t).contains(m) {
                cycles.push(format!("{m} ↔ {t}"));
            }
        }
    }
    assert!(cycles.is_empty(), "sibling files use each other: {cycles:#?}");
    // The check sees what it is meant to: the request inbox spawns invitee
    // flows.
    assert!(edges.get("machine::requests").is_some_and(|e| e.contains("machine::invitee")), "{edges:#?}");
}

/// The checks above see through re-exports and comments (so a passing run
/// means something): a higher module's re-export of a leaf error counts as
/// the leaf, and a path in a comment counts as nothing.
#[test]
fn arch_the_reader_resolves_re_exports_and_skips_comments() {
    let krate = Crate::load();
    let s = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(krate.defining_module(&s("error::DecodeError")).as_deref(), Some("error::leaf"));
    assert_eq!(krate.defining_module(&s("DecodeError")).as_deref(), Some("error::leaf"));
    assert_eq!(krate.defining_module(&s("dht::MemoryDht")).as_deref(), Some("dht::memory"));
    assert_eq!(krate.defining_module(&s("flow::FlowId")).as_deref(), Some("ids"));
    assert_eq!(krate.defining_module(&s("driver::Event")).as_deref(), Some("flow"));
    assert_eq!(krate.defining_module(&s("message::InvitationKind")).as_deref(), Some("wire"));
    let f = File {
        module: "crypto::keys".into(),
        rel: "x".into(),
        code: strip_comments("// crate::driver::Handle\nfn f() { crate::machine::Flow::x() }\n"),
    };
    let used: Vec<String> = krate.uses(&f).into_iter().map(|(_, m)| m).collect();
    assert_eq!(used, vec!["machine".to_owned()]);
    let (code, tests) = cut_test_modules(
        "fn a() {}\n#[cfg(test)]\nmod tests {\n use crate::driver;\n fn b() { {} }\n}\n#[cfg(test)]\nmod more_tests;\n",
    );
    assert_eq!(code.trim(), "fn a() {}");
    assert_eq!(tests, vec!["more_tests".to_owned()]);
}
