//! `SHA256SUMS`: the index systemd-sysupdate reads from a `Type=url-file` source to find the
//! versions on offer and check what it downloads. One directory collects every version and
//! architecture, so the file is merged, never overwritten: lines for other files are kept, the
//! line for the file just built is replaced, and lines are sorted by file name so the result
//! does not depend on build order.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// File name to lowercase hex SHA-256, sorted by file name (byte order).
pub type Sums = BTreeMap<String, String>;

/// A `SHA256SUMS` file as read: its bytes (what `SHA256SUMS.gpg` signs) and what they list.
pub struct SumsFile {
    pub bytes: Vec<u8>,
    pub sums: Sums,
}

/// Reads and parses the `SHA256SUMS` at `path`, read once so that a signature check and the
/// parse see the same bytes; `None` when there is no such file (a new feed). Errors name the
/// file and what is malformed in it.
pub fn load(path: &Path) -> Result<Option<SumsFile>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!("{} is malformed: it is not UTF-8", path.display());
    };
    let sums = parse(text).with_context(|| format!("{} is malformed", path.display()))?;
    Ok(Some(SumsFile { bytes, sums }))
}

/// Parses `sha256sum` output: `<64 hex>  <file>` (text mode) or `<64 hex> *<file>` (binary mode),
/// accepting exactly what systemd-sysupdate 257 accepts (`resource_load_from_web` in
/// src/sysupdate/sysupdate-resource.c): every line ends in `\n` (no `\r`, no blank line, the
/// last line too), and a file name is a valid file name (not `.` or `..`, no `/`, at most 255
/// bytes) without control characters. A line sysupdate would refuse makes it refuse the whole
/// list, so it is an error here too, never dropped: a merge never silently loses an entry of a
/// published feed, and `verify` never accepts a list the nodes would refuse.
pub fn parse(text: &str) -> Result<Sums> {
    let mut sums = Sums::new();
    for (number, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let malformed = |why: &str| {
            anyhow::anyhow!(
                "SHA256SUMS line {}: {line:?} is not `<64 hex digits>  <file name>` and a \
                 newline ({why}, which systemd-sysupdate refuses); fix or remove the line",
                number + 1
            )
        };
        if !raw.ends_with('\n') {
            return Err(malformed("no newline at its end: the list looks truncated"));
        }
        if line.is_empty() {
            return Err(malformed("a blank line"));
        }
        if line.len() < 67 || !line.is_char_boundary(64) {
            return Err(malformed("too short"));
        }
        let (hash, rest) = line.split_at(64);
        let file = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(|| malformed("no two-character separator"))?;
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("the hash is not 64 hex digits"));
        }
        if file.chars().any(char::is_control) {
            return Err(malformed(
                "a control character, such as \\r, in the file name",
            ));
        }
        if file.is_empty() || file == "." || file == ".." || file.contains('/') || file.len() > 255
        {
            return Err(malformed("not a file name"));
        }
        if sums
            .insert(file.to_string(), hash.to_ascii_lowercase())
            .is_some()
        {
            bail!(
                "SHA256SUMS line {}: {file} is listed twice; remove one of the lines",
                number + 1
            );
        }
    }
    Ok(sums)
}

/// Sets the line for `file`, keeping every other line.
pub fn merge(sums: &mut Sums, file: &str, sha256_hex: &str) {
    sums.insert(file.to_string(), sha256_hex.to_ascii_lowercase());
}

/// Renders `<hex>  <file>` lines sorted by file name, as `sha256sum` writes them.
pub fn render(sums: &Sums) -> String {
    sums.iter()
        .map(|(file, hash)| format!("{hash}  {file}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aa00000000000000000000000000000000000000000000000000000000000000";
    const B: &str = "bb00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn merge_keeps_others_replaces_own_sorts() {
        let text = format!("{B}  k-v2-x86-64.raw\n{A} *k-v1-x86-64.raw\n");
        let mut sums = parse(&text).unwrap();
        merge(&mut sums, "k-v2-x86-64.raw", A);
        merge(&mut sums, "k-v1-arm64.raw", B);
        assert_eq!(
            render(&sums),
            format!("{B}  k-v1-arm64.raw\n{A}  k-v1-x86-64.raw\n{A}  k-v2-x86-64.raw\n")
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "nonsense",
            &format!("{A} x"),
            &format!("{}  x", &A[..63]),
            &format!("{A}  a/b"),
            &format!("{A}  ..\n"),
            &format!("{A}  .\n"),
            &format!("{A}  x.raw\r\n"),
            &format!("{A}  x.raw\t\n"),
            &format!("{A}  x.raw"),
            "\n",
            &format!("\n{A}  x.raw\n"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("line 1"), "{err}");
        }
        assert!(parse(&format!("{A}  x\n{B}  x\n")).is_err());
        // `\r\r\n`: not a line for x.raw and one for "x.raw\r", but a refused list.
        let err = parse(&format!("{A}  x.raw\n{B}  x.raw\r\r\n")).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("control character"), "{err}");
        assert!(parse("").unwrap().is_empty());
    }
}
