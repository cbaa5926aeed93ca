//! The superblock, the one part of an image every other offset comes from. Before anything is
//! read at those offsets this checks the magic, the compressor, the inode and id counts, that
//! the tables lie inside the file in the order the format gives them, and that the declared
//! fragments fit the fragment cache budget.

use std::io::{BufRead, Seek};

use anyhow::{anyhow, bail, Context, Result};
use backhand::compression::{CompressionOptions, Compressor};
use backhand::kind::{Kind, LE_V4_0};
use backhand::{Squashfs, SuperBlock};

use super::backhand_errors::describe;
use super::limits::Limits;

pub(super) const SUPERBLOCK_BYTES: u64 = 96;
/// A table offset that is absent (fragment, export and xattr tables are optional).
pub(super) const NOT_SET: u64 = u64::MAX;

/// Compressor name as mksquashfs and the manifest spell it.
pub fn compressor_name(compressor: Compressor) -> &'static str {
    match compressor {
        Compressor::Uncompressed => "none",
        Compressor::Gzip => "gzip",
        Compressor::Lzma => "lzma",
        Compressor::Lzo => "lzo",
        Compressor::Xz => "xz",
        Compressor::Lz4 => "lz4",
        Compressor::Zstd => "zstd",
    }
}

/// The only format read: little-endian SquashFS 4.0, what mksquashfs and the kernel use.
pub(super) fn squashfs_kind() -> Kind {
    Kind::from_const(LE_V4_0).expect("little-endian SquashFS 4.0 is built into backhand")
}

/// Reads and checks the superblock of an image of `len` bytes and its compression options.
pub(super) fn read_superblock<R: BufRead + Seek + Send>(
    reader: &mut R,
    len: u64,
    limits: &Limits,
) -> Result<(SuperBlock, Option<CompressionOptions>)> {
    if len < SUPERBLOCK_BYTES {
        bail!("it is {len} bytes long, shorter than a SquashFS superblock (96 bytes)");
    }
    if len > limits.max_image_bytes {
        bail!(
            "it is {len} bytes long; this tool reads images up to {} bytes (a sysext is far smaller)",
            limits.max_image_bytes
        );
    }
    let kind = squashfs_kind();
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .context("cannot read the superblock")?;
    if &magic != b"hsqs" {
        bail!("it does not start with the SquashFS magic \"hsqs\" (found {magic:02x?})");
    }
    reader.rewind()?;
    let (sb, options) = Squashfs::superblock_and_compression_options(reader, &kind)
        .map_err(|err| anyhow!("its superblock is invalid: {}", describe(&err)))?;
    check_superblock(&sb, len, limits)?;
    Ok((sb, options))
}

/// The BCJ filter an xz options block declares: `none` (also for other compressors and xz
/// without options), `x86`, `arm64`, or `other` for any other combination of squashfs-tools'
/// filter bits.
pub(super) fn xz_filter_name(options: Option<CompressionOptions>) -> &'static str {
    match options {
        Some(CompressionOptions::Xz(xz)) => {
            use backhand::v4::compressor::XzFilter;
            [(0, "none"), (0x01, "x86"), (0x40, "arm64")]
                .into_iter()
                .find(|(bits, _)| xz.filters == XzFilter::new(*bits))
                .map_or("other", |(_, name)| name)
        }
        _ => "none",
    }
}

/// The superblock's own consistency, and the bounds it sets on everything read after it.
fn check_superblock(sb: &SuperBlock, len: u64, limits: &Limits) -> Result<()> {
    match sb.compressor {
        Compressor::Xz | Compressor::Gzip | Compressor::Zstd => {}
        other => bail!(
            "it uses the {} compressor; only xz, zstd and gzip images are read",
            compressor_name(other)
        ),
    }
    if sb.inode_count == 0 || sb.inode_count > limits.max_entries {
        bail!(
            "its superblock claims {} inodes; between 1 and {} are accepted",
            sb.inode_count,
            limits.max_entries
        );
    }
    if sb.bytes_used > len || sb.bytes_used < SUPERBLOCK_BYTES {
        bail!(
            "its superblock claims {} bytes used but the file has {len} (truncated or corrupted)",
            sb.bytes_used
        );
    }
    let end = sb.bytes_used;
    if !(SUPERBLOCK_BYTES <= sb.inode_table
        && sb.inode_table < sb.dir_table
        && sb.dir_table < end
        && sb.id_table < end)
    {
        bail!(
            "its table offsets are out of order or outside the image (inode {}, directory {}, id {}, bytes used {end})",
            sb.inode_table,
            sb.dir_table,
            sb.id_table
        );
    }
    for (name, offset) in [
        ("fragment", sb.frag_table),
        ("export", sb.export_table),
        ("xattr", sb.xattr_table),
    ] {
        if offset != NOT_SET && (offset <= sb.dir_table || offset >= end) {
            bail!("its {name} table offset {offset} is outside the image's table area");
        }
    }
    if sb.id_count == 0 {
        bail!("its id table is empty (every inode needs an owner)");
    }
    let fragment_cache = u64::from(sb.frag_count) * u64::from(sb.block_size);
    if fragment_cache > limits.max_fragment_cache_bytes {
        bail!(
            "it declares {} fragments of {} bytes; this tool decompresses at most {} bytes of fragments",
            sb.frag_count,
            sb.block_size,
            limits.max_fragment_cache_bytes
        );
    }
    if sb.frag_count != 0 && sb.frag_table == NOT_SET {
        bail!(
            "it declares {} fragments but no fragment table",
            sb.frag_count
        );
    }
    Ok(())
}
