//! Writes a payload as a SquashFS image whose bytes depend only on the payload and the options.
//!
//! backhand's `FilesystemWriter` does the encoding. This module pins everything it would
//! otherwise take from the environment: uid/gid 0 and mtime = epoch on every inode *including the
//! root directory* (which `FilesystemWriter` creates itself and has no mtime setter for: see
//! [`writer_with_root`]), the superblock time, block size, compressor and its level, entry
//! order (backhand sorts nodes by path, so insertion order does not matter), and no xattrs.
//! Compression runs through [`crate::squashfs::compress`], which spreads blocks over all cores while the
//! output stays byte-identical to compressing them one by one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Cursor, Seek, Write};

use anyhow::{bail, Context, Result};
use backhand::{FilesystemReader, FilesystemWriter, NodeHeader};

use crate::payload::{Node, Payload};
use crate::squashfs::compress::{self, Compression, XzFilter};

/// Block size of the empty seed image [`empty_reader_with_root`] writes; it never reaches the
/// output, whose block size comes from [`ImageOptions`].
const SEED_BLOCK_SIZE: u32 = 128 * 1024;

/// Settings that, with the payload, determine the image bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    pub compression: Compression,
    /// Data block size: a power of two from 4 KiB to 1 MiB (checked by `build`).
    pub block_size: u32,
    /// BCJ filter tried on every data block (xz only).
    pub xz_filter: XzFilter,
    /// Every mtime and the superblock time.
    pub epoch: u32,
}

fn header(permissions: u16, epoch: u32) -> NodeHeader {
    NodeHeader::new(permissions, 0, 0, epoch)
}

/// A `FilesystemWriter` whose root directory inode has mode 0755, uid/gid 0 and mtime `epoch`.
///
/// `FilesystemWriter::default()` creates the root node with mtime 0 and offers setters only for
/// its mode, uid and gid. `FilesystemWriter::from_fs_reader` instead copies every node, root
/// included, from a `FilesystemReader`, whose nodes are public. So: write an empty image, read it
/// back, set the root header there, and start the real writer from that reader. The empty image
/// contributes nothing else: block size, compressor, kind and time are all set afterwards by the
/// caller, and it holds no other node.
fn writer_with_root<'a>(
    seed: &'a FilesystemReader<'static>,
) -> Result<FilesystemWriter<'a, 'static, 'static>> {
    FilesystemWriter::from_fs_reader(seed).context("cannot start the image writer")
}

/// The reader [`writer_with_root`] starts from: an empty image whose root header is ours.
fn empty_reader_with_root(epoch: u32) -> Result<FilesystemReader<'static>> {
    let mut bytes = Cursor::new(Vec::new());
    let mut seed = FilesystemWriter::default();
    seed.set_compressor(Compression::Gzip.filesystem_compressor(SEED_BLOCK_SIZE, XzFilter::None));
    seed.write(&mut bytes)
        .context("cannot write the seed image")?;
    bytes.set_position(0);
    let mut reader = FilesystemReader::from_reader(bytes).context("cannot read the seed image")?;
    anyhow::ensure!(
        reader.root.nodes.len() == 1,
        "the seed image unexpectedly holds more than its root"
    );
    reader.root.nodes[0].header = header(0o755, epoch);
    Ok(reader)
}

/// Writes `payload` as a SquashFS image to `out` and truncates `out` to the image size.
/// Returns the image size in bytes.
pub fn write_image(payload: &Payload, options: ImageOptions, out: &mut File) -> Result<u64> {
    write_image_with_stats(payload, options, out).map(|(size, _)| size)
}

/// [`write_image`], also reporting how the parallel compression plan was used.
pub fn write_image_with_stats(
    payload: &Payload,
    options: ImageOptions,
    out: &mut File,
) -> Result<(u64, compress::PlanUse)> {
    check_dedup_hashes(payload, options.block_size)?;
    let seed = empty_reader_with_root(options.epoch)?;
    let mut fs = writer_with_root(&seed)?;
    fs.set_kind(compress::kind());
    fs.set_time(options.epoch);
    fs.set_block_size(options.block_size);
    fs.set_only_root_id();
    fs.set_compressor(
        options
            .compression
            .filesystem_compressor(options.block_size, options.xz_filter),
    );
    fs.set_no_duplicate_files(true);
    fs.set_kib_padding(4);

    for (path, node) in payload.entries() {
        let pushed = match node {
            Node::Dir => fs.push_dir(path, header(0o755, options.epoch)),
            Node::File(file) => fs.push_file(
                Cursor::new(file.contents.clone()),
                path,
                header(file.mode(), options.epoch),
            ),
            Node::Symlink(target) => fs.push_symlink(target, path, header(0o777, options.epoch)),
        };
        pushed.with_context(|| format!("cannot add {path} to the image"))?;
    }

    let plan = compress::plan(
        payload,
        options.compression,
        options.block_size,
        options.xz_filter,
    );
    out.rewind()?;
    let mut writer = BufWriter::with_capacity(1 << 20, &mut *out);
    let (written, plan_use) = compress::with_plan(plan, || fs.write(&mut writer));
    let (_, size) = written.context("cannot write the SquashFS image")?;
    writer.flush()?;
    drop(writer);
    // backhand rewinds over the data of a duplicate file and writes on top of it; if nothing
    // overwrote all of it, stale bytes would remain past the end of the image.
    out.set_len(size)?;
    Ok((size, plan_use))
}

/// backhand stores a file whose contents equal an earlier file's (same length and xxh64 of the
/// contents) only once, comparing hashes, not bytes. Two different files with the same 64-bit
/// hash would silently share data; refuse that case instead of writing a wrong image.
fn check_dedup_hashes(payload: &Payload, block_size: u32) -> Result<()> {
    let mut seen: HashMap<(usize, u64), (&str, [u8; 32])> = HashMap::new();
    for (path, node) in payload.entries() {
        let Node::File(file) = node else { continue };
        if file.contents.len() < block_size as usize {
            continue; // small files go to fragments, which backhand does not deduplicate
        }
        let key = (
            file.contents.len(),
            xxhash_rust::xxh64::xxh64(&file.contents, 0),
        );
        if let Some((other, sha)) = seen.insert(key, (path, file.sha256)) {
            if sha != file.sha256 {
                bail!(
                    "{path} and {other} differ but have the same xxh64 hash, which the SquashFS \
                     writer uses to find duplicate files; it would store one file's data for \
                     both. Change one of the files"
                );
            }
        }
    }
    Ok(())
}
