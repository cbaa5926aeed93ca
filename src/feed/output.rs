//! Crash-safe writing of the outputs into the output directory.
//!
//! Every output is first written to a hidden temporary file in the output directory itself (so
//! the final rename stays on one file system and is atomic), flushed to disk, and renamed into
//! place only once all of them are complete; `SHA256SUMS` is renamed last. A crash or an error
//! at any moment therefore leaves either the old files or the new, complete ones, never a partial
//! image, and never a SHA256SUMS line for an image that is not fully in place. Temporary files of
//! a failed build are removed when they are dropped. A file whose final name already holds the
//! same bytes is left as it is (not even renamed over), so an identical rebuild changes nothing.

use std::fs::{self, File, Permissions};
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Mode of every output file, independent of the umask: a feed directory is served to others.
const OUTPUT_MODE: u32 = 0o644;

/// Temporary files are `.FINAL_NAME.RANDOM.tmp`, RANDOM being tempfile's alphanumeric part.
const TEMP_SUFFIX: &str = ".tmp";

fn is_stale_temp(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|random| {
            !random.is_empty() && random.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// The output directory, locked for the duration of a build so that two builds writing into
/// the same directory cannot lose each other's SHA256SUMS lines.
pub struct OutputDir {
    path: PathBuf,
    /// Holds an exclusive `flock` on the directory until dropped.
    _lock: File,
    staged: Vec<(NamedTempFile, String)>,
}

impl OutputDir {
    /// Creates `path` if needed and takes the lock.
    pub fn open(path: &Path) -> Result<Self> {
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create the output directory {}", path.display()))?;
        let lock = File::open(path)
            .with_context(|| format!("cannot open the output directory {}", path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock the output directory {}", path.display()))?;
        Ok(OutputDir {
            path: path.to_path_buf(),
            _lock: lock,
            staged: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new hidden temporary file in the directory that will become `final_name` on commit.
    /// Returned by index so the caller can write it (see [`Self::file`]).
    ///
    /// Temporary files for `final_name` left by a build that was killed are removed first: the
    /// directory lock guarantees no other build is writing them now.
    pub fn stage(&mut self, final_name: &str) -> Result<usize> {
        let prefix = format!(".{final_name}.");
        for entry in fs::read_dir(&self.path)
            .with_context(|| format!("cannot list {}", self.path.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_stale_temp(name, &prefix) {
                fs::remove_file(entry.path()).with_context(|| {
                    format!(
                        "cannot remove the stale temporary file {}",
                        entry.path().display()
                    )
                })?;
            }
        }
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(&self.path)
            .with_context(|| {
                format!("cannot create a temporary file in {}", self.path.display())
            })?;
        self.staged.push((temp, final_name.to_string()));
        Ok(self.staged.len() - 1)
    }

    /// Stages `final_name` with `contents`.
    pub fn stage_bytes(&mut self, final_name: &str, contents: &[u8]) -> Result<()> {
        let index = self.stage(final_name)?;
        self.file(index)
            .write_all(contents)
            .with_context(|| format!("cannot write the temporary file for {final_name}"))
    }

    /// The open temporary file staged at `index`.
    pub fn file(&mut self, index: usize) -> &mut File {
        self.staged[index].0.as_file_mut()
    }

    /// Path of the temporary file staged at `index`.
    pub fn temp_path(&self, index: usize) -> &Path {
        self.staged[index].0.path()
    }

    /// Flushes every staged file to disk, then renames them into place in the order they were
    /// staged (stage SHA256SUMS last), then flushes the directory. Returns the final paths.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        for (temp, name) in &self.staged {
            let file = temp.as_file();
            file.set_permissions(Permissions::from_mode(OUTPUT_MODE))
                .with_context(|| format!("cannot set the mode of {name}"))?;
            file.sync_all()
                .with_context(|| format!("cannot flush {name} to disk"))?;
        }
        let mut written = Vec::new();
        for (temp, name) in self.staged.drain(..) {
            let target = self.path.join(&name);
            if same_contents(temp.path(), &target)? {
                written.push(target); // the temporary file is removed when dropped
                continue;
            }
            temp.persist(&target).with_context(|| {
                format!("cannot rename the temporary file to {}", target.display())
            })?;
            written.push(target);
        }
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot flush the directory {}", self.path.display()))?;
        Ok(written)
    }
}

/// Whether `existing` exists and holds exactly the bytes of `staged`. Sizes first (a different
/// build rarely has the same size), then the contents a buffer at a time, so an identical
/// rebuild of a large image never holds two copies of it in memory.
fn same_contents(staged: &Path, existing: &Path) -> Result<bool> {
    let old_len = match fs::metadata(existing) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", existing.display())),
    };
    let open =
        |path: &Path| File::open(path).with_context(|| format!("cannot read {}", path.display()));
    let new = open(staged)?;
    if new.metadata()?.len() != old_len {
        return Ok(false);
    }
    let (mut old, mut new) = (
        std::io::BufReader::with_capacity(1 << 20, open(existing)?),
        std::io::BufReader::with_capacity(1 << 20, new),
    );
    loop {
        let (a, b) = (old.fill_buf()?, new.fill_buf()?);
        let n = a.len().min(b.len());
        if n == 0 {
            return Ok(a.is_empty() && b.is_empty());
        }
        if a[..n] != b[..n] {
            return Ok(false);
        }
        old.consume(n);
        new.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_names() {
        let prefix = ".k-v1-x86-64.raw.";
        assert!(is_stale_temp(".k-v1-x86-64.raw.Ab12xY.tmp", prefix));
        assert!(!is_stale_temp("k-v1-x86-64.raw", prefix));
        assert!(!is_stale_temp(".k-v1-x86-64.raw..tmp", prefix));
        assert!(!is_stale_temp(".k-v1-x86-64.raw.a.b.tmp", prefix));
        // another output's temporary file whose name extends this one's is not touched
        assert!(!is_stale_temp(".k-v1-x86-64.raw.sig.Ab12xY.tmp", prefix));
    }
}
