//! No module of `backends/src`, `core/src`, `store/src` or `jobs/src` imports (directly or
//! through others) a module that imports it back: the graph of `crate::`/`self::`/`super::`
//! references (use trees and qualified paths, test modules included, comments and strings left
//! out) is acyclic, both between top-level modules and between the files of a module directory.
//! The crate root counts as a module: a path through one of its re-exports depends on
//! everything it re-exports. The server's `src` is checked too, and its loops printed, but not
//! asserted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path below the crate root (`[]` is the root itself).
type Module = Vec<String>;

/// Every `.rs` file below `dir` by the module it defines (`a/mod.rs` and `a.rs` define `a`).
fn modules(dir: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            found.insert(module, path);
        }
    }
    found
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Rust source as tokens, without comments, string and character literals.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 1;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                i += 1;
            }
        } else if c == 'r' && (at(i + 1) == '"' || (at(i + 1) == '#' && "\"#".contains(at(i + 2))))
        {
            // Raw string: r"..." or r#"..."#.
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            i += 2 + hashes;
            while i < chars.len() && !(chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                i += 1;
            }
            i += 1 + hashes;
            tokens.push(Token::Other);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            tokens.push(Token::Other);
        } else if c == '\'' && (at(i + 2) == '\'' || at(i + 1) == '\\') {
            // A character literal (a lifetime has no closing quote).
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            tokens.push(Token::Other);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            tokens.push(match c {
                ':' if at(i + 1) == ':' => {
                    i += 1;
                    Token::PathSep
                }
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                // `$crate` is a macro's own crate, not a path of this one.
                '$' if at(i + 1).is_alphabetic() => {
                    while at(i + 1).is_alphanumeric() || at(i + 1) == '_' {
                        i += 1;
                    }
                    Token::Other
                }
                _ => Token::Other,
            });
            i += 1;
        }
    }
    tokens
}

/// Reads a path (or use tree) starting at `tokens[*i]` into every full path it names.
fn read_tree(tokens: &[Token], i: &mut usize, prefix: Vec<String>, paths: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match tokens.get(*i) {
            Some(Token::Ident(name)) => {
                if name != "self" || path.is_empty() || path.last().is_some_and(|s| s == "super") {
                    path.push(name.clone());
                }
                *i += 1;
            }
            Some(Token::Open) => {
                *i += 1;
                while !matches!(tokens.get(*i), Some(Token::Close) | None) {
                    let start = *i;
                    read_tree(tokens, i, path.clone(), paths);
                    // A separator, or a token no path starts with (`*`): step over it.
                    if tokens.get(*i) == Some(&Token::Comma) || *i == start {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => break,
        }
        if tokens.get(*i) == Some(&Token::PathSep)
            && matches!(tokens.get(*i + 1), Some(Token::Ident(_) | Token::Open))
        {
            *i += 1;
        } else {
            break;
        }
    }
    // `x as y`: the rename is not part of the path.
    if tokens.get(*i) == Some(&Token::Ident("as".into())) {
        *i += 2;
    }
    paths.push(path);
}

/// The modules `file` (defining `module`) refers to, among `known`.
fn references(module: &Module, source: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let tokens = tokens(source);
    let mut found = BTreeSet::new();
    // Inline modules (`mod tests { .. }`) open at a brace depth; `self`/`super` count from them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let here: Module = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        match &tokens[i] {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if inline.last().is_some_and(|&(_, open)| open == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word)
                if word == "mod"
                    && matches!(tokens.get(i + 1), Some(Token::Ident(_)))
                    && tokens.get(i + 2) == Some(&Token::Open) =>
            {
                if let Some(Token::Ident(name)) = tokens.get(i + 1) {
                    inline.push((name.clone(), depth));
                }
            }
            Token::Ident(first)
                if tokens.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || tokens[i - 1] != Token::PathSep) =>
            {
                let child = here.iter().chain([first]).cloned().collect::<Module>();
                let base: Option<Module> = match first.as_str() {
                    "crate" => Some(Vec::new()),
                    "self" | "super" => Some(here.clone()),
                    // A path starting at a child module (`use child::Item` in `mod.rs`).
                    _ if known.contains(&child) => Some(here.clone()),
                    _ => None,
                };
                if let Some(base) = base {
                    if first != "crate" && first != "self" && first != "super" {
                        // Left for read_tree to push as the first segment.
                    } else {
                        i += 2;
                    }
                    let mut paths = Vec::new();
                    read_tree(&tokens, &mut i, Vec::new(), &mut paths);
                    let initial = if first == "super" {
                        vec!["super".to_string()]
                    } else {
                        Vec::new()
                    };
                    for path in paths {
                        let mut target = base.clone();
                        for segment in initial.iter().chain(&path) {
                            if segment == "super" {
                                target.pop();
                            } else {
                                target.push(segment.clone());
                            }
                        }
                        // The longest prefix that is a file module.
                        while !known.contains(&target) {
                            target.pop();
                        }
                        if &target != module {
                            found.insert(target);
                        }
                    }
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Edges between the modules of the crate at `src`, at file granularity.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files = modules(src);
    let known: BTreeSet<Module> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, file)| {
            let source = std::fs::read_to_string(file).unwrap();
            (module.clone(), references(module, &source, &known))
        })
        .collect()
}

/// The same graph with each module taken as its top-level module.
fn top_level(graph: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let top = |m: &Module| m.iter().take(1).cloned().collect::<Module>();
    let mut merged: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, targets) in graph {
        let entry = merged.entry(top(from)).or_default();
        entry.extend(targets.iter().map(top).filter(|t| *t != top(from)));
    }
    merged
}

/// One cycle of `graph`, as the modules along it (the first repeated at the end), if any.
fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = stack.iter().position(|m| m == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn show(cycle: &[Module]) -> String {
    let name = |m: &Module| {
        if m.is_empty() {
            "crate".to_string()
        } else {
            m.join("::")
        }
    };
    cycle.iter().map(name).collect::<Vec<_>>().join(" -> ")
}

/// The loops of the crate at `src`, at both granularities: a cycle, then (its last edge left
/// out) the next, until none is left.
fn loops(src: &Path) -> Vec<String> {
    let files = graph(src);
    let mut found = Vec::new();
    for (level, mut graph) in [("top-level modules", top_level(&files)), ("files", files)] {
        while let Some(cycle) = cycle(&graph) {
            found.push(format!("{level}: {}", show(&cycle)));
            let [.., from, to] = &cycle[..] else {
                unreachable!("a cycle has an edge")
            };
            graph.get_mut(from).unwrap().remove(to);
        }
    }
    found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn backends_core_store_and_jobs_modules_import_no_loops() {
    let found: Vec<String> = ["backends", "core", "store", "jobs"]
        .into_iter()
        .flat_map(|name| {
            loops(&crate_src(name))
                .into_iter()
                .map(move |found| format!("{name}/src, {found}"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "module import loops:\n{}",
        found.join("\n")
    );
}

/// The server is reported, not asserted (its loops are its owners' to fix).
#[test]
fn server_module_loops_are_reported() {
    for found in loops(&crate_src("server")) {
        eprintln!("module import loop in server/src, {found}");
    }
}

#[test]
fn the_reader_finds_use_trees_qualified_paths_and_relative_ones() {
    let known: BTreeSet<Module> = [
        vec![],
        vec!["a"],
        vec!["b"],
        vec!["b", "c"],
        vec!["d"],
        vec!["e"],
    ]
    .into_iter()
    .map(|m| m.into_iter().map(String::from).collect())
    .collect();
    let module = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Module>();
    let source = r#"
        use crate::{a::X, b::{self, c::Y as Z}};
        // use crate::d::Commented;
        const S: &str = "crate::d::InAString";
        fn f() { super::d::g(); }
        #[cfg(test)]
        mod tests { use super::*; }
    "#;
    let found = references(&module(&["e"]), source, &known);
    let expected: BTreeSet<Module> = [
        module(&["a"]),
        module(&["b"]),
        module(&["b", "c"]),
        module(&["d"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, expected);
    // In `b/mod.rs`, `use c::Y` is the child module.
    let found = references(&module(&["b"]), "pub use c::Y;", &known);
    assert_eq!(found, [module(&["b", "c"])].into_iter().collect());
    // A path through the crate root's re-exports depends on the root.
    let found = references(&module(&["a"]), "fn f() { crate::Root::new(); }", &known);
    assert_eq!(found, [module(&[])].into_iter().collect());
}
