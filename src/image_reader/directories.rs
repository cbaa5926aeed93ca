//! The directory tree, walked from the root before backhand builds it. backhand recurses once
//! per level and holds every entry's full path; this walk uses an explicit stack and bounds
//! depth, path lengths, total path bytes and the entry count, refuses names that could escape a
//! directory, duplicate names, loops, and entries whose type disagrees with their inode.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Result};

use super::cursor::Bytes;
use super::inodes::{InodeType, WalkedInodes};
use super::limits::Limits;
use super::metadata::MetadataArea;

/// Walks the directory tree from the root with an explicit stack, bounding depth, path lengths,
/// entry count and total path bytes; every directory may be entered once. Returns the number of
/// entries below the root.
pub(super) fn walk_directories(
    area: &MetadataArea,
    walked: &WalkedInodes,
    root: u32,
    limits: &Limits,
) -> Result<usize> {
    let mut stack = vec![(root, 0usize, 0usize)];
    let mut entered = HashSet::new();
    let mut entries = 0usize;
    let mut path_bytes = 0usize;
    while let Some((dir, depth, dir_path_len)) = stack.pop() {
        if !entered.insert(dir) {
            bail!("directory inode {dir} is reachable twice (a loop or a hard-linked directory)");
        }
        let listing = walked.by_number[&dir]
            .listing
            .expect("only directories are pushed");
        if listing.file_size < 4 {
            continue;
        }
        let start = area
            .block_at
            .get(&u64::from(listing.block_index))
            .and_then(|block| block.checked_add(listing.block_offset as usize))
            .ok_or_else(|| anyhow!("directory inode {dir} points outside the directory table"))?;
        let end = start
            .checked_add(listing.file_size as usize - 3)
            .filter(|end| *end <= area.bytes.len())
            .ok_or_else(|| {
                anyhow!("directory inode {dir} has a listing past the directory table's end")
            })?;
        let mut cur = Bytes::new(&area.bytes[start..end]);
        let mut names = HashSet::new();
        while !cur.done() {
            let count = cur.u32()?;
            let _start = cur.u32()?;
            let base = cur.u32()?;
            if count >= 256 {
                bail!(
                    "directory inode {dir} has a listing header of {} entries (at most 256)",
                    count + 1
                );
            }
            for _ in 0..=count {
                let _offset = cur.u16()?;
                let delta = cur.u16()? as i16;
                let entry_type = cur.u16()?;
                let name_size = cur.u16()?;
                let name = cur.take(usize::from(name_size) + 1)?;
                if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                    bail!(
                        "directory inode {dir} holds an invalid name {:?}",
                        String::from_utf8_lossy(name)
                    );
                }
                if !names.insert(name) {
                    bail!(
                        "directory inode {dir} holds the name {:?} twice",
                        String::from_utf8_lossy(name)
                    );
                }
                let number = i64::from(base as i32) + i64::from(delta);
                let inode = u32::try_from(number)
                    .ok()
                    .and_then(|n| walked.by_number.get(&n).map(|inode| (n, inode)));
                let Some((number, inode)) = inode else {
                    bail!("directory inode {dir} refers to missing inode {number}");
                };
                if InodeType::decode(entry_type).map(|(kind, _)| kind) != Some(inode.kind) {
                    bail!("directory inode {dir} lists inode {number} with type {entry_type}, but the inode has type {}", inode.kind.number());
                }
                entries += 1;
                if entries > limits.max_entries as usize {
                    bail!("it has more than {} entries", limits.max_entries);
                }
                let path_len = dir_path_len + 1 + name.len();
                if path_len > limits.max_path_bytes {
                    bail!(
                        "it holds a path longer than {} bytes",
                        limits.max_path_bytes
                    );
                }
                path_bytes += path_len;
                if path_bytes > limits.max_total_path_bytes {
                    bail!(
                        "its paths together exceed {} bytes",
                        limits.max_total_path_bytes
                    );
                }
                if inode.listing.is_some() {
                    if depth + 1 > limits.max_depth {
                        bail!(
                            "its directories nest deeper than {} levels",
                            limits.max_depth
                        );
                    }
                    stack.push((number, depth + 1, path_len));
                }
            }
        }
    }
    Ok(entries)
}
