//! Everything that must hold before backhand is allowed to parse an image, in the order the
//! checks depend on each other: the superblock, where each table ends, the metadata blocks of
//! every table under one budget, the inode table, the directory tree from the root, and the
//! region map. backhand then parses the same bytes; it never sees an image this refused.

use std::io::{BufRead, Seek};

use anyhow::{bail, Result};
use backhand::SuperBlock;

use super::directories::walk_directories;
use super::inodes::{root_inode, walk_inodes};
use super::limits::Limits;
use super::metadata::{check_lookup_blocks, lookup_table_start, read_metadata_region};
use super::regions::{region_map, Region};
use super::superblock::{read_superblock, squashfs_kind, xz_filter_name, NOT_SET};

/// One fragment table entry: start (8), size (4), unused (4).
const FRAGMENT_ENTRY_BYTES: u64 = 16;

/// What the precheck learned and later steps reuse.
pub(super) struct Checked {
    pub(super) superblock: SuperBlock,
    pub(super) xz_filter: &'static str,
    pub(super) regions: Vec<Region>,
    /// Entries below the root, as the directory walk counted them.
    pub(super) entry_count: usize,
}

/// The superblock checks, the bounded table walk and the region map.
pub(super) fn precheck<R: BufRead + Seek + Send>(
    reader: &mut R,
    len: u64,
    limits: &Limits,
) -> Result<Checked> {
    let (sb, options) = read_superblock(reader, len, limits)?;
    let kind = squashfs_kind();

    // Where the directory table ends: backhand reads it up to the first lookup table's first
    // metadata block, in this order of preference.
    let fragment_blocks = if sb.frag_count != 0 && sb.frag_table != NOT_SET {
        Some(lookup_table_start(reader, &sb, sb.frag_table, "fragment")?)
    } else {
        None
    };
    let export_blocks = if sb.nfs_export_table_exists() && sb.export_table != NOT_SET {
        Some(lookup_table_start(reader, &sb, sb.export_table, "export")?)
    } else {
        None
    };
    let id_blocks = lookup_table_start(reader, &sb, sb.id_table, "id")?;
    let dir_end = fragment_blocks.or(export_blocks).unwrap_or(id_blocks);
    if dir_end <= sb.dir_table {
        bail!(
            "its directory table (byte {}) does not end before the next table (byte {dir_end})",
            sb.dir_table
        );
    }

    let mut budget = limits.max_metadata_bytes;
    let inodes = read_metadata_region(
        reader,
        &sb,
        &kind,
        sb.inode_table,
        sb.dir_table,
        "inode table",
        &mut budget,
    )?;
    let dirs = read_metadata_region(
        reader,
        &sb,
        &kind,
        sb.dir_table,
        dir_end,
        "directory table",
        &mut budget,
    )?;

    // backhand reads each lookup table as consecutive metadata blocks from its first pointer,
    // as many as the byte size it computes needs; check those blocks the same way.
    let lookup_tables = [
        fragment_blocks.map(|start| {
            let bytes = u64::from(sb.frag_count) * FRAGMENT_ENTRY_BYTES;
            (start, bytes, "fragment table")
        }),
        export_blocks.map(|start| {
            let bytes = u64::from(sb.inode_count).div_ceil(1024);
            (start, bytes, "export table")
        }),
        Some((id_blocks, u64::from(sb.id_count), "id table")),
    ];
    for (start, bytes, what) in lookup_tables.into_iter().flatten() {
        check_lookup_blocks(reader, &sb, &kind, start, bytes, what, &mut budget)?;
    }

    let walked = walk_inodes(&inodes, &sb)?;
    let root = root_inode(&inodes, &walked, &sb)?;
    let entry_count = walk_directories(&dirs, &walked, root, limits)?;

    let regions = region_map(reader, &sb, len, fragment_blocks, export_blocks, id_blocks)?;
    Ok(Checked {
        superblock: sb,
        xz_filter: xz_filter_name(options),
        regions,
        entry_count,
    })
}
