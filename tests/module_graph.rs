//! The library's modules depend on each other one way only. rustc accepts modules that import
//! each other, but then neither can be read or changed alone (as the SquashFS writer and its
//! compressor once did), and a file of a module directory such as `image_reader/` that reaches
//! back into its parent's items undoes the point of splitting it. So this reads src/ itself: one
//! node per module file of the library (main.rs and the binary's `commands/` are a crate of
//! their own), an edge for every path through `crate::`, `super::`, `self::` or a child module's
//! bare name (`use` lines, grouped imports and inline paths; inline `#[cfg(test)]` modules left
//! out, since their `use super::*` is the file using itself), then looks for cycles and for
//! edges against the order of the map in lib.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Module = Vec<String>;

/// The library's top-level modules in the order data flows through them, as lib.rs lists them:
/// a module may use those before it, never one after it. `crate` is lib.rs (`hex`).
const LAYERS: [&str; 11] = [
    "crate",
    "names",
    "payload",
    "squashfs",
    "disk",
    "trust",
    "feed",
    "provisioning",
    "image_reader",
    "diff",
    "verify",
];

fn library_graph() -> BTreeMap<String, BTreeSet<String>> {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // A parser that found nothing would find no cycle either.
    for (from, to) in [
        ("squashfs::writer", "squashfs::compress"),
        ("verify", "image_reader"),
        ("disk::ddi", "disk::verity"),
        ("provisioning", "feed::manifest"),
        ("image_reader", "image_reader::precheck"),
        ("image_reader::precheck", "image_reader::superblock"),
        ("image_reader::entries", "crate"),
    ] {
        assert!(
            graph.get(from).is_some_and(|to_set| to_set.contains(to)),
            "the module graph lacks {from} -> {to}: {graph:#?}"
        );
    }
    graph
}

#[test]
fn the_crate_has_no_module_cycle() {
    let graph = library_graph();
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that depend on each other (move what both need to one of them or to a third \
         module, so the dependency runs one way):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn dependencies_follow_the_data_flow_and_never_reach_the_commands() {
    let graph = library_graph();
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        !tokens(&without_comments_and_literals(&lib))
            .windows(2)
            .any(|w| w[0] == "mod" && w[1] == "commands"),
        "lib.rs declares the commands: they are the binary's (main.rs), so that the library \
         cannot depend on them"
    );
    let mut wrong = Vec::new();
    for (from, uses) in &graph {
        let top = |m: &str| m.split("::").next().unwrap().to_string();
        let rank = |m: &str| LAYERS.iter().position(|l| *l == top(m));
        let Some(from_rank) = rank(from) else {
            wrong.push(format!(
                "{from} is not in LAYERS (add it where lib.rs's map puts it)"
            ));
            continue;
        };
        for to in uses {
            match rank(to) {
                Some(to_rank) if to_rank < from_rank || top(to) == top(from) => {}
                _ => wrong.push(format!("{from} -> {to}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the order of lib.rs's map (a module may use only those listed \
         before it: move what both need earlier, or the user later):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn cycles_between_modules_and_back_into_a_parent_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir(src.join("reader")).unwrap();
    for (file, text) in [
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod reader;\n"),
        // a and b through a grouped import and an inline path.
        ("a.rs", "use crate::{c::C, b::{B, D}};\npub struct A;\n"),
        ("b.rs", "pub struct B; pub struct D;\nfn f() -> crate::a::A { todo!() }\n"),
        // Strings, comments and char literals do not count.
        ("c.rs", "pub struct C; // crate::a::A\nconst S: &str = \"crate::b::B\"; const Q: char = '\"';\n"),
        // A child module that uses its parent's items, while the parent uses the child.
        ("reader/mod.rs", "mod part;\npub struct Image;\nfn g() { part::h() }\n#[cfg(test)]\nmod tests { use super::*; use crate::b::B; }\n"),
        ("reader/part.rs", "pub(super) fn h() { let _: Option<super::Image> = None; }\n"),
    ] {
        fs::write(src.join(file), text).unwrap();
    }
    let graph = module_graph(src);
    assert!(
        !graph["c"].contains("a") && !graph["c"].contains("b"),
        "{graph:#?}"
    );
    assert!(
        !graph["reader"].contains("b"),
        "a test module's import counted: {graph:#?}"
    );
    assert_eq!(
        cycles(&graph),
        ["a -> b -> a", "reader -> reader::part -> reader"],
        "{graph:#?}"
    );
}

/// Module (`a::b`, `crate` for lib.rs) -> the modules it uses.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    collect_modules(src, src, &mut modules);
    let mut graph = BTreeMap::new();
    for (module, text) in &modules {
        let mut uses = BTreeSet::new();
        let tokens = tokens(&without_test_modules(&without_comments_and_literals(text)));
        let children: BTreeSet<&str> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].as_str())
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            let starts_path =
                tokens.get(i + 1).is_some_and(|t| t == "::") && (i == 0 || tokens[i - 1] != "::");
            if !starts_path {
                continue;
            }
            let base: Module = match token.as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                name if children.contains(name) => {
                    let mut child = module.clone();
                    child.push(name.to_string());
                    child
                }
                _ => continue,
            };
            for path in use_tree(&tokens[i + 2..]) {
                let mut full = base.clone();
                let mut segments = path.into_iter().peekable();
                while segments.next_if(|s| s == "super").is_some() {
                    full.pop();
                }
                full.extend(segments);
                let target = modules
                    .keys()
                    .filter(|m| full.starts_with(m))
                    .max_by_key(|m| m.len())
                    .expect("the crate root is a prefix of every path");
                if target != module {
                    uses.insert(name(target));
                }
            }
        }
        graph.insert(name(module), uses);
    }
    graph
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// Every .rs file below `dir` as a module path: `a.rs` -> a, `a/mod.rs` -> a, `lib.rs` -> root.
/// main.rs and its `commands/` are the binary, a crate of its own.
fn collect_modules(src: &Path, dir: &Path, modules: &mut BTreeMap<Module, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == src.join("commands") {
            continue;
        }
        if path.is_dir() {
            collect_modules(src, &path, modules);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|s| s.to_str().unwrap().to_string())
                .collect();
            if module
                .last()
                .is_some_and(|last| last == "mod" || last == "lib")
            {
                module.pop();
            }
            modules.insert(module, fs::read_to_string(&path).unwrap());
        }
    }
}

/// The paths a use tree after `prefix::` names: `a::B` -> [a, B]; `{a::B, c::{D, E}}` -> three;
/// `*` -> the prefix itself.
fn use_tree(tokens: &[String]) -> Vec<Module> {
    let mut path = Vec::new();
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        if token == "{" {
            let mut paths = Vec::new();
            let mut depth = 0;
            let mut start = i + 1;
            for (j, t) in tokens.iter().enumerate().skip(i) {
                match t.as_str() {
                    "{" => depth += 1,
                    "}" | "," if depth == 1 => {
                        for tail in use_tree(&tokens[start..j]) {
                            paths.push([path.clone(), tail].concat());
                        }
                        start = j + 1;
                        if t == "}" {
                            return paths;
                        }
                    }
                    "}" => depth -= 1,
                    _ => {}
                }
            }
            return paths;
        }
        if !is_identifier(token) {
            break;
        }
        path.push(token.clone());
        if tokens.get(i + 1).is_some_and(|t| t == "::") {
            i += 2;
        } else {
            break;
        }
    }
    vec![path]
}

fn is_identifier(token: &str) -> bool {
    token.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_string());
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
        i += 1;
    }
    tokens
}

/// Comments, string and char literals become spaces, so that no path is seen inside them.
fn without_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let skip = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|c| *c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            (2..rest.len())
                .find(|j| rest[j - 1..=*j] == ['*', '/'])
                .map_or(rest.len(), |j| j + 1)
        } else if rest[0] == 'r'
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
            && rest[1..].iter().find(|c| **c != '#') == Some(&'"')
        {
            let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let open = 2 + hashes;
            (open..rest.len())
                .find(|j| rest[*j..].starts_with(&close))
                .map_or(rest.len(), |j| j + close.len())
        } else if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if rest[0] == '\'' && rest.get(1) == Some(&'\\') {
            // '\n', '\'', '\u{7f}': the escaped character, then up to the closing quote.
            3 + rest
                .get(3..)
                .unwrap_or_default()
                .iter()
                .position(|c| *c == '\'')
                .unwrap_or(0)
                + 1
        } else if rest[0] == '\'' && rest.get(2) == Some(&'\'') {
            3
        } else {
            0
        };
        if skip == 0 {
            out.push(chars[i]);
            i += 1;
        } else {
            let end = (i + skip).min(chars.len());
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|c| if *c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        }
    }
    out
}

/// Drops each `#[cfg(test)] mod NAME { ... }` block.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(body) = after.strip_prefix("mod") else {
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        };
        let Some(open) = body.find('{') else { break };
        out.push_str(&rest[..at]);
        let mut depth = 0;
        let mut end = body.len();
        for (j, c) in body.char_indices().skip(open) {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                end = j + 1;
                break;
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// Each cycle once, as `a -> b -> a`, starting from its smallest module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut cycle = stack[at..].to_vec();
            let smallest = (0..cycle.len()).min_by_key(|i| &cycle[*i]).unwrap();
            cycle.rotate_left(smallest);
            cycle.push(cycle[0].clone());
            found.insert(cycle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(graph, next, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(graph, node, &mut Vec::new(), &mut done, &mut found);
    }
    found.into_iter().collect()
}
