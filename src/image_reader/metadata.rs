//! Metadata blocks, the compressed 8 KiB units the inode, directory and lookup tables are made
//! of. backhand would decompress a block to whatever size its header allows (up to 4 MiB) and
//! read a table as far as offsets say; here every block is read against the format's 8 KiB and a
//! budget shared by all tables, and each table must end exactly where the next one starts.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};

use anyhow::{anyhow, bail, Context, Result};
use backhand::kind::Kind;
use backhand::v4::metadata;
use backhand::SuperBlock;

use super::backhand_errors::describe;

/// SquashFS metadata blocks hold at most 8 KiB once decompressed (squashfs format, "metadata").
const METADATA_BLOCK_MAX: usize = metadata::METADATA_MAXSIZE;

/// A lookup table (fragments, export, ids) is an index of 8-byte pointers to metadata blocks;
/// returns where its first block starts, checked to lie inside the table area.
pub(super) fn lookup_table_start<R: Read + Seek>(
    reader: &mut R,
    sb: &SuperBlock,
    index: u64,
    name: &str,
) -> Result<u64> {
    reader.seek(SeekFrom::Start(index))?;
    let mut ptr = [0u8; 8];
    reader
        .read_exact(&mut ptr)
        .with_context(|| format!("cannot read the {name} table index at byte {index}"))?;
    let ptr = u64::from_le_bytes(ptr);
    if ptr <= sb.dir_table || ptr >= index {
        bail!("its {name} table index points to byte {ptr}, outside the area between the directory table and the index");
    }
    Ok(ptr)
}

/// Decompressed bytes of a metadata area, and where each on-disk block starts in them.
pub(super) struct MetadataArea {
    pub(super) bytes: Vec<u8>,
    /// Offset of a block relative to the area's start on disk -> offset in `bytes`.
    pub(super) block_at: HashMap<u64, usize>,
}

/// Decompresses the table of `what` from `start` to `end`: the last block must end at `end`,
/// since backhand reads the next table from there.
pub(super) fn read_metadata_region<R: Read + Seek>(
    reader: &mut R,
    sb: &SuperBlock,
    kind: &Kind,
    start: u64,
    end: u64,
    what: &str,
    budget: &mut usize,
) -> Result<MetadataArea> {
    reader.seek(SeekFrom::Start(start))?;
    let mut area = MetadataArea {
        bytes: Vec::new(),
        block_at: HashMap::new(),
    };
    let mut pos = start;
    while pos < end {
        let block = read_metadata_block(
            reader,
            sb,
            kind,
            pos,
            what,
            budget,
            "inode and directory tables",
        )?;
        area.block_at.insert(pos - start, area.bytes.len());
        area.bytes.extend_from_slice(&block);
        pos = reader.stream_position()?;
    }
    if pos != end {
        bail!("its {what} runs past its end at byte {end} (to byte {pos})");
    }
    Ok(area)
}

/// Reads the `ceil(bytes / 8 KiB)` metadata blocks from `start` that backhand will read for a
/// lookup table, checking each against the format's size and the shared budget.
pub(super) fn check_lookup_blocks<R: BufRead + Seek + Send>(
    reader: &mut R,
    sb: &SuperBlock,
    kind: &Kind,
    start: u64,
    bytes: u64,
    what: &str,
    budget: &mut usize,
) -> Result<()> {
    reader.seek(SeekFrom::Start(start))?;
    for _ in 0..bytes.div_ceil(METADATA_BLOCK_MAX as u64) {
        let pos = reader.stream_position()?;
        read_metadata_block(reader, sb, kind, pos, what, budget, "metadata tables")?;
    }
    Ok(())
}

/// Reads the metadata block of `what` at `pos` (the reader's position), refusing one larger
/// than the format allows or than what is left of `budget`, which `budget_covers` names for
/// the error.
fn read_metadata_block<R: Read + Seek>(
    reader: &mut R,
    sb: &SuperBlock,
    kind: &Kind,
    pos: u64,
    what: &str,
    budget: &mut usize,
    budget_covers: &str,
) -> Result<Vec<u8>> {
    let block = metadata::read_block(reader, sb, kind).map_err(|err| {
        anyhow!(
            "its {what} block at byte {pos} cannot be read: {}",
            describe(&err)
        )
    })?;
    if block.len() > METADATA_BLOCK_MAX {
        bail!(
            "its {what} block at byte {pos} decompresses to {} bytes, more than the format's {METADATA_BLOCK_MAX}",
            block.len()
        );
    }
    if block.len() > *budget {
        bail!("its {budget_covers} decompress to more than this tool reads");
    }
    *budget -= block.len();
    Ok(block)
}
