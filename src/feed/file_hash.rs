//! Hashing whole image files, the main cost of `verify`: large sequential reads into sha2,
//! which uses the CPU's SHA extensions when present (see BENCHMARKS.md for the comparison with
//! `sha256sum`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256, Sha512};

use crate::hex;

/// Lowercase hex sha256 of the open `file` (`path` names it in errors), read with positional
/// reads from its start: the file offset, which another reader of the same open file may be
/// using, is neither used nor moved.
pub fn sha256_open(file: &File, path: &Path) -> Result<String> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = file
            .read_at(&mut buf, offset)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex sha256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 and SHA-512 of the file at `path`, read back from disk (what was written, not what
/// was meant to be written), each digest on its own thread.
pub fn sha256_and_sha512(path: &Path) -> Result<(String, String)> {
    fn digest<D: Digest>(path: &Path) -> Result<String> {
        let mut file =
            File::open(path).with_context(|| format!("cannot read back {}", path.display()))?;
        let mut hasher = D::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(hex(&hasher.finalize()));
            }
            hasher.update(&buffer[..read]);
        }
    }
    std::thread::scope(|scope| {
        let sha512 = scope.spawn(|| digest::<Sha512>(path));
        let sha256 = digest::<Sha256>(path)?;
        let sha512 = sha512.join().expect("hashing thread panicked")?;
        Ok((sha256, sha512))
    })
}
