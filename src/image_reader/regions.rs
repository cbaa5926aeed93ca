//! The map of an image file by which `diff` names what differs when two images hold the same
//! entries but not the same bytes: which part (superblock, data, each table and its index,
//! padding) each byte range is, from the offsets the checked superblock and lookup tables give.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use anyhow::Result;
use backhand::SuperBlock;

use super::superblock::{NOT_SET, SUPERBLOCK_BYTES};

/// A named byte range of the image file (superblock, tables, data), for `diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub range: Range<u64>,
}

/// Splits the file into named regions by the offsets the superblock and lookup tables give.
pub(super) fn region_map<R: Read + Seek>(
    reader: &mut R,
    sb: &SuperBlock,
    len: u64,
    fragment_blocks: Option<u64>,
    export_blocks: Option<u64>,
    id_blocks: u64,
) -> Result<Vec<Region>> {
    let mut starts: Vec<(u64, &'static str)> = vec![
        (0, "superblock"),
        (SUPERBLOCK_BYTES, "data blocks and fragments"),
        (sb.inode_table, "inode table"),
        (sb.dir_table, "directory table"),
        (id_blocks, "id table"),
        (sb.id_table, "id table index"),
        (sb.bytes_used, "padding after bytes_used"),
    ];
    if sb.compressor_options_are_present() {
        // The options sit in one metadata block right after the superblock.
        reader.seek(SeekFrom::Start(SUPERBLOCK_BYTES))?;
        let mut header = [0u8; 2];
        reader.read_exact(&mut header)?;
        let size = u64::from(u16::from_le_bytes(header) & 0x7fff);
        starts.push((SUPERBLOCK_BYTES, "compression options"));
        starts.retain(|(_, name)| *name != "data blocks and fragments");
        starts.push((SUPERBLOCK_BYTES + 2 + size, "data blocks and fragments"));
    }
    if let Some(blocks) = fragment_blocks {
        starts.push((blocks, "fragment table"));
        starts.push((sb.frag_table, "fragment table index"));
    }
    if let Some(blocks) = export_blocks {
        starts.push((blocks, "export table"));
        starts.push((sb.export_table, "export table index"));
    }
    if sb.xattr_table != NOT_SET {
        starts.push((sb.xattr_table, "xattr table"));
    }
    starts.sort();
    starts.dedup_by_key(|(start, _)| *start);
    let mut regions = Vec::with_capacity(starts.len());
    for (i, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(len, |(next, _)| *next);
        if end > *start {
            regions.push(Region {
                name,
                range: *start..end,
            });
        }
    }
    Ok(regions)
}
