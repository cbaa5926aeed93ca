//! Reading a file's content out of an image. backhand decompresses the data blocks; this runs it
//! under `catch_unwind` and insists that exactly the length the inode declares arrives, so a
//! truncated or lying image is an error, not a short hash.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, bail, Context, Result};
use backhand::{FilesystemReader, SquashfsFileReader};

use super::backhand_errors::describe;

/// Streams one file's content to `sink`, checking that exactly the declared length arrives.
pub(super) fn read_content(
    fs: &FilesystemReader<'static>,
    file: &SquashfsFileReader,
    path: &str,
    mut sink: impl FnMut(&[u8]),
) -> Result<u64> {
    let declared = file.file_len() as u64;
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<u64> {
        let mut reader = fs
            .file(file)
            .reader_checked()
            .map_err(|err| anyhow!("{path}: {}", describe(&err)))?;
        let mut buf = vec![0u8; 1 << 17];
        let mut total = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("cannot read the content of {path}"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            sink(&buf[..n]);
        }
        Ok(total)
    }));
    let total = match outcome {
        Ok(result) => result?,
        Err(_) => bail!("the SquashFS reader crashed reading {path} (the image is malformed)"),
    };
    if total != declared {
        bail!(
            "{path} declares {declared} bytes but {total} could be read (truncated or corrupted)"
        );
    }
    Ok(total)
}
