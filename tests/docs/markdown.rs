//! Reading the documentation the way the checks need it: README.md, every docs/*.md and the
//! READMEs of tests/ (tests/e2e, tests/system: the docs link into them), their
//! fenced code blocks with the `<!-- check: KIND -->` marker that says how each is checked (on the
//! line before the fence, possibly indented, as inside a list item), their headings as GitHub
//! turns them into anchors, and their links.

use std::path::{Path, PathBuf};

/// The repository root (the crate's manifest directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One documentation file: its path relative to the repository and its text.
pub struct Document {
    pub path: PathBuf,
    pub text: String,
}

/// README.md, docs/*.md and tests/*/README.md, in a fixed order (README first, then docs/ by
/// name, then the tests' READMEs by directory).
pub fn documents() -> Vec<Document> {
    let root = repo();
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap_or_else(|e| panic!("cannot list docs/: {e}"))
        .map(|entry| PathBuf::from("docs").join(entry.unwrap().file_name()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    let mut test_readmes: Vec<PathBuf> = std::fs::read_dir(root.join("tests"))
        .unwrap_or_else(|e| panic!("cannot list tests/: {e}"))
        .map(|entry| {
            PathBuf::from("tests")
                .join(entry.unwrap().file_name())
                .join("README.md")
        })
        .filter(|path| root.join(path).is_file())
        .collect();
    test_readmes.sort();
    paths.extend(test_readmes);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(root.join(&path))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Document { path, text }
        })
        .collect()
}

/// A fenced code block: where it starts, the KIND of the marker before it (if any), the fence's
/// info string and the body without the fence's indentation.
pub struct Block {
    pub line: usize,
    pub kind: Option<String>,
    pub info: String,
    pub body: String,
}

/// Every fenced code block of `text`, marked or not. A marker that is not followed by a fence,
/// and a fence that is never closed, are errors: both would let an example escape its check.
pub fn fenced_blocks(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(kind) = marker(line) {
            let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
            if !next.starts_with("```") {
                return Err(format!(
                    "line {}: <!-- check: {kind} --> is not followed by a code fence",
                    i + 1
                ));
            }
        }
        let trimmed = line.trim_start();
        if !trimmed.starts_with("```") {
            i += 1;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let kind = i
            .checked_sub(1)
            .and_then(|previous| marker(lines[previous]))
            .map(str::to_string);
        let mut body = Vec::new();
        let mut end = None;
        for (j, inner) in lines.iter().enumerate().skip(i + 1) {
            if inner.trim() == "```" && inner.len() - inner.trim_start().len() == indent {
                end = Some(j);
                break;
            }
            body.push(inner.get(indent..).unwrap_or("").to_string());
        }
        let Some(end) = end else {
            return Err(format!("line {}: code block never closed", i + 1));
        };
        found.push(Block {
            line: i + 1,
            kind,
            info: trimmed.trim_start_matches('`').trim().to_string(),
            body: body.join("\n"),
        });
        i = end + 1;
    }
    Ok(found)
}

/// The KIND of a `<!-- check: KIND -->` line.
fn marker(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("<!-- check: ")?
        .strip_suffix(" -->")
        .map(str::trim)
}

/// Every block of every document, with the document it is in.
pub fn all_blocks() -> Vec<(PathBuf, Block)> {
    documents()
        .into_iter()
        .flat_map(|doc| {
            fenced_blocks(&doc.text)
                .unwrap_or_else(|e| panic!("{}: {e}", doc.path.display()))
                .into_iter()
                .map(move |block| (doc.path.clone(), block))
        })
        .collect()
}

/// Every block marked `kind`, in document order.
pub fn blocks(kind: &str) -> Vec<String> {
    all_blocks()
        .into_iter()
        .filter(|(_, block)| block.kind.as_deref() == Some(kind))
        .map(|(_, block)| block.body)
        .collect()
}

/// The one block marked `kind`.
pub fn block(kind: &str) -> String {
    let mut all = blocks(kind);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one block marked {kind} in README.md and docs/"
    );
    all.remove(0)
}

/// The documentation shows the Butane output with the image's sha512 and the key replaced by
/// descriptions; apply the same replacement to real output.
pub fn shorten_butane(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match (line.find("\"sha512-"), line.find("\"data:;base64,")) {
            (Some(at), _) => format!(
                "{}\"sha512-<the image's sha512 from the manifest>\"",
                &line[..at]
            ),
            (_, Some(at)) => format!("{}\"data:;base64,<feed.gpg in base64>\"", &line[..at]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The lines of `text` outside fenced code blocks (a `#` comment in a shell block is no heading,
/// a `](` in a YAML block no link), with their line numbers.
pub fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<usize> = None;
    let mut prose = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match fence {
            None if trimmed.starts_with("```") => fence = Some(indent),
            None => prose.push((i + 1, line)),
            Some(open) if line.trim() == "```" && indent == open => fence = None,
            Some(_) => {}
        }
    }
    prose
}

/// The anchors GitHub gives the headings of `text`: lower case, letters, digits, `-` and `_`
/// kept, spaces turned into `-`, everything else dropped; a repeated anchor gets `-1`, `-2`, ...
pub fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = heading(line) else {
            continue;
        };
        let base: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.push(anchor);
    }
    seen
}

/// The text of an ATX heading line (`## Title`).
pub fn heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    line[hashes..].strip_prefix(' ').map(str::trim)
}

/// The targets of the inline links `[text](target)` in the prose of `text`, with line numbers.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            found.push((number, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    found
}

/// Problems with the relative links of `text`, a document at `path` (relative to `root`): each
/// must name an existing file or directory inside the repository, and an anchor must be a
/// heading of the Markdown file it points into.
pub fn link_problems(root: &Path, path: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (line, target) in links(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target.as_str(), None),
        };
        let where_ = format!("{}:{line}: link {target:?}", path.display());
        let resolved = if file.is_empty() {
            path.to_path_buf()
        } else {
            match normalise(&path.parent().unwrap_or(Path::new("")).join(file)) {
                Some(resolved) => resolved,
                None => {
                    problems.push(format!("{where_} leaves the repository"));
                    continue;
                }
            }
        };
        let on_disk = root.join(&resolved);
        if !file.is_empty() && !on_disk.exists() {
            problems.push(format!("{where_}: {} does not exist", resolved.display()));
            continue;
        }
        let Some(anchor) = anchor else {
            continue;
        };
        if resolved.extension().is_none_or(|ext| ext != "md") {
            problems.push(format!(
                "{where_}: an anchor into a file that is not Markdown"
            ));
            continue;
        }
        let target_text = if file.is_empty() {
            text.to_string()
        } else {
            std::fs::read_to_string(&on_disk).unwrap_or_default()
        };
        if !anchors(&target_text).iter().any(|a| a == anchor) {
            problems.push(format!(
                "{where_}: {} has no heading with the anchor #{anchor}",
                resolved.display()
            ));
        }
    }
    problems
}

/// `a/b/../c` as `a/c`, without touching the file system; None if it climbs above the root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}
