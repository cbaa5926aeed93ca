//! Reading checked blocks out of README.md: a line `<!-- check: KIND -->` (possibly indented, as
//! inside a list item) followed by a fenced code block; the block's lines are returned without
//! the fence's indentation.

use std::path::Path;

pub fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every block marked `kind`, in README order.
pub fn blocks(kind: &str) -> Vec<String> {
    let text = readme();
    let marker = format!("<!-- check: {kind} -->");
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != marker {
            continue;
        }
        let fence = lines
            .get(i + 1)
            .unwrap_or_else(|| panic!("{marker} at the end of README.md"));
        let indent = fence.len() - fence.trim_start().len();
        assert!(
            fence.trim_start().starts_with("```"),
            "{marker} is not followed by a code fence"
        );
        let mut body = Vec::new();
        let mut closed = false;
        for line in &lines[i + 2..] {
            if line.trim() == "```" && line.len() - line.trim_start().len() == indent {
                closed = true;
                break;
            }
            body.push(line.get(indent..).unwrap_or("").to_string());
        }
        assert!(closed, "{marker}: code block never closed");
        found.push(body.join("\n"));
    }
    found
}

/// The one block marked `kind`.
pub fn block(kind: &str) -> String {
    let mut all = blocks(kind);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one block marked {kind} in README.md"
    );
    all.remove(0)
}

/// The README shows the Butane output with the image's sha512 and the key replaced by
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
