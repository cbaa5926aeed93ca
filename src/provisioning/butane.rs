//! The Butane config (variant flatcar, version 1.0.0) of a [`Node`], as YAML.
//!
//! Version 1.0.0 because nothing in the config needs more: flatcar 1.1.0 (Ignition 3.4.0) only
//! adds `arn:` URLs, setuid/setgid/sticky modes on directories, LUKS `discard`/`open_options` and
//! `*_local` contents, none of which is used here, and 3.3.0 is read by older Ignition releases.
//!
//! The YAML is written by hand: every value that comes from input is either a validated token
//! or emitted as a double-quoted scalar with every non-ASCII or special character escaped, and
//! multi-line text is a literal block only when it round-trips exactly (see [`yaml_text`]).

use std::fmt::Write as _;

use super::{base64_data_url, Contents, Node};

/// The Butane document for `node`.
pub fn render(node: &Node) -> String {
    let mut y = String::new();
    let w = &mut y;
    let _ = writeln!(
        w,
        "# Butane config for the {} system extension {}, written by sysext-assembler",
        node.name, node.image_file
    );
    let _ = writeln!(
        w,
        "# {} from its manifest. Transpile: butane --strict < this.bu > this.ign",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(w, "variant: flatcar");
    let _ = writeln!(w, "version: 1.0.0");
    let _ = writeln!(w, "storage:");
    let _ = writeln!(w, "  directories:");
    for d in &node.directories {
        let _ = writeln!(w, "    - path: {}", quote(&d.path));
        let _ = writeln!(w, "      mode: {} # 0{:o}", d.mode, d.mode);
    }
    let _ = writeln!(w, "  files:");
    for f in &node.files {
        if let Some(comment) = f.comment {
            let _ = writeln!(w, "    # {comment}");
        }
        let _ = writeln!(w, "    - path: {}", quote(&f.path));
        let note = f.mode_note.map(|n| format!(": {n}")).unwrap_or_default();
        let _ = writeln!(w, "      mode: {} # 0{:o}{note}", f.mode, f.mode);
        let _ = writeln!(w, "      contents:");
        match &f.contents {
            Contents::Text(text) => {
                let _ = writeln!(w, "        inline: {}", yaml_text(text, 10));
            }
            Contents::Binary(bytes) => {
                let _ = writeln!(w, "        source: {}", quote(&base64_data_url(bytes)));
            }
            Contents::Remote { url, sha512 } => {
                let _ = writeln!(w, "        source: {}", quote(url));
                let _ = writeln!(w, "        verification:");
                let _ = writeln!(w, "          hash: {}", quote(&format!("sha512-{sha512}")));
            }
        }
    }
    let _ = writeln!(w, "  links:");
    for l in &node.links {
        let _ = writeln!(w, "    - path: {}", quote(&l.path));
        let _ = writeln!(w, "      target: {}", quote(&l.target));
        let _ = writeln!(w, "      hard: false");
    }
    let _ = writeln!(w, "systemd:");
    let _ = writeln!(w, "  units:");
    for u in &node.units {
        if let Some(comment) = u.comment {
            let _ = writeln!(w, "    # {comment}");
        }
        let _ = writeln!(w, "    - name: {}", u.name);
        if let Some(enabled) = u.enabled {
            let _ = writeln!(w, "      enabled: {enabled}");
        }
        if !u.dropins.is_empty() {
            let _ = writeln!(w, "      dropins:");
            for d in &u.dropins {
                let _ = writeln!(w, "        - name: {}", quote(&d.name));
                let _ = writeln!(w, "          contents: {}", yaml_text(&d.contents, 12));
            }
        }
    }
    y
}

/// A YAML double-quoted scalar that any YAML 1.1 or 1.2 parser reads back as `s`: printable
/// ASCII as is, everything else escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Multi-line text as a YAML value at `indent` spaces: a literal block (`|`, `|-` or `|+`
/// depending on trailing newlines) when that reads back exactly, else a quoted scalar. A block
/// is not safe when the first line starts with whitespace (YAML would take it for indentation)
/// or when the text has characters a block cannot carry (control characters, CR, BOM, the
/// Unicode line separators some YAML 1.1 parsers break lines at).
pub fn yaml_text(text: &str, indent: usize) -> String {
    let block_safe = !text.is_empty()
        && !text.starts_with([' ', '\t', '\n'])
        && text.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || (!c.is_control() && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'))
        })
        // A line holding only whitespace right before the end could be taken as indentation
        // noise by some parsers; quote instead.
        && !text.lines().any(|l| !l.is_empty() && l.trim().is_empty());
    if !block_safe {
        return quote(text);
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent);
    let mut out = String::from(header);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_or_quote() {
        assert_eq!(yaml_text("a\nb\n", 2), "|\n  a\n  b");
        assert_eq!(yaml_text("a", 2), "|-\n  a");
        assert!(yaml_text(" leading", 2).starts_with('"'));
        assert!(yaml_text("cr\r\n", 2).starts_with('"'));
        assert_eq!(quote("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c\\u00e9\"");
    }
}
