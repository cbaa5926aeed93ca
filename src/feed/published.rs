//! Published versions are immutable. A feed's nodes trust an image name and its hash once they
//! have verified them; a different image under a name already in the feed would reach some nodes
//! and not others, and every node that verified the old bytes would now fail to verify a
//! re-download (or, with a cached SHA256SUMS, install bytes nobody checked). So `build` refuses to
//! write different bytes under a name the output directory already publishes, and an identical
//! rebuild (the normal case, the build being reproducible) changes nothing. Replacing on purpose
//! takes `--replace-published`.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::feed::{file_hash, sums::Sums};

fn sha256_of(path: &Path) -> Result<Option<String>> {
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        Ok(_) => file_hash::sha256_file(path).map(Some),
    }
}

/// Refuses `new_sha256` under `name` in `dir` when the directory already publishes other bytes
/// under that name, as a file or as a line of `sums`; unless `replace` is set.
pub fn check(dir: &Path, sums: &Sums, name: &str, new_sha256: &str, replace: bool) -> Result<()> {
    let mut conflicts = Vec::new();
    if let Some(old) = sha256_of(&dir.join(name))?.filter(|old| old != new_sha256) {
        conflicts.push(format!("{} has sha256 {old}", dir.join(name).display()));
    }
    if let Some(old) = sums.get(name).filter(|old| *old != new_sha256) {
        conflicts.push(format!("SHA256SUMS lists it with sha256 {old}"));
    }
    if conflicts.is_empty() || replace {
        return Ok(());
    }
    bail!(
        "refusing to publish different bytes as {name}: {}, and this build gives sha256 {new_sha256}. \
         A published version is immutable: nodes that verified the old bytes would see another image \
         under the same name. Nothing was written. Build a new --version instead, or pass \
         --replace-published if the old bytes must be withdrawn (see --help).",
        conflicts.join("; ")
    )
}
