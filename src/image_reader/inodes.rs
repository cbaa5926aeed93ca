//! The inode table, walked the way backhand will parse it: every inode's fixed part, and each
//! variable-length part (a file's block list, a symlink's target, a directory's index) checked
//! against the bytes actually present and the counts the superblock gives, so backhand never
//! allocates or reads for a size the image only claims.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use backhand::SuperBlock;

use super::cursor::Bytes;
use super::metadata::MetadataArea;

const NO_FRAGMENT: u32 = u32::MAX;
/// backhand refuses files of 2 TiB or more; the walker mirrors that so the two agree.
const MAX_FILE_SIZE: u64 = 2 << 40;

/// What an inode is, by SquashFS 4.0's type numbers: the basic types 1..=7, each with an
/// extended form (8..=14, the basic number + 7) that carries more fields. Directory entries
/// name the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InodeType {
    Dir = 1,
    File = 2,
    Symlink = 3,
    BlockDevice = 4,
    CharDevice = 5,
    Fifo = 6,
    Socket = 7,
}

impl InodeType {
    /// The type of a raw type number, and whether it is the extended form; `None` for numbers
    /// the format does not have.
    pub(super) fn decode(raw: u16) -> Option<(InodeType, bool)> {
        let (basic, extended) = if raw > 7 {
            (raw - 7, true)
        } else {
            (raw, false)
        };
        let kind = match basic {
            1 => InodeType::Dir,
            2 => InodeType::File,
            3 => InodeType::Symlink,
            4 => InodeType::BlockDevice,
            5 => InodeType::CharDevice,
            6 => InodeType::Fifo,
            7 => InodeType::Socket,
            _ => return None,
        };
        Some((kind, extended))
    }

    /// The basic type number, as messages show it.
    pub(super) fn number(self) -> u16 {
        self as u16
    }
}

/// Where a directory's listing lies in the directory table.
#[derive(Clone, Copy)]
pub(super) struct DirListing {
    pub(super) block_index: u32,
    pub(super) block_offset: u32,
    pub(super) file_size: u32,
}

/// What the directory walk needs of an inode: its type, to compare with the entry naming it, and
/// where its listing lies if it is a directory.
pub(super) struct WalkedInode {
    /// The basic type (an extended form folded onto it).
    pub(super) kind: InodeType,
    pub(super) listing: Option<DirListing>,
}

/// Every inode the walk saw, by number and by where it starts.
pub(super) struct WalkedInodes {
    pub(super) by_number: HashMap<u32, WalkedInode>,
    /// Offset in the decompressed inode table -> inode number.
    by_offset: HashMap<usize, u32>,
}

/// Walks the decompressed inode table the way backhand will parse it, checking every
/// variable-length part against the bytes actually present.
pub(super) fn walk_inodes(area: &MetadataArea, sb: &SuperBlock) -> Result<WalkedInodes> {
    let mut cur = Bytes::new(&area.bytes);
    let mut walked = WalkedInodes {
        by_number: HashMap::new(),
        by_offset: HashMap::new(),
    };
    while !cur.done() {
        let offset = cur.position();
        let inode_type = cur.u16()?;
        let _permissions = cur.u16()?;
        let uid_index = cur.u16()?;
        let gid_index = cur.u16()?;
        let _mtime = cur.u32()?;
        let number = cur.u32()?;
        if uid_index >= sb.id_count || gid_index >= sb.id_count {
            bail!("inode {number} names an owner outside the id table");
        }
        let mut listing = None;
        let Some((kind, extended)) = InodeType::decode(inode_type) else {
            bail!("inode {number} has unknown type {inode_type}");
        };
        match (kind, extended) {
            (InodeType::Dir, false) => {
                let block_index = cur.u32()?;
                let _links = cur.u32()?;
                let file_size = u32::from(cur.u16()?);
                let block_offset = u32::from(cur.u16()?);
                let _parent = cur.u32()?;
                listing = Some(DirListing {
                    block_index,
                    block_offset,
                    file_size,
                });
            }
            (InodeType::Dir, true) => {
                let _links = cur.u32()?;
                let file_size = cur.u32()?;
                let block_index = cur.u32()?;
                let _parent = cur.u32()?;
                let index_count = cur.u16()?;
                let block_offset = u32::from(cur.u16()?);
                let _xattr = cur.u32()?;
                for _ in 0..index_count {
                    cur.take(8)?;
                    let name_size = cur.u32()?;
                    if name_size >= 256 {
                        bail!("directory inode {number} has an index name of {name_size} bytes");
                    }
                    cur.take(name_size as usize + 1)?;
                }
                listing = Some(DirListing {
                    block_index,
                    block_offset,
                    file_size,
                });
            }
            (InodeType::File, false) => {
                let _blocks_start = cur.u32()?;
                let fragment = cur.u32()?;
                let _block_offset = cur.u32()?;
                let size = u64::from(cur.u32()?);
                skip_block_list(&mut cur, sb, number, fragment, size)?;
            }
            (InodeType::File, true) => {
                let _blocks_start = cur.u64()?;
                let size = cur.u64()?;
                let _sparse = cur.u64()?;
                let _links = cur.u32()?;
                let fragment = cur.u32()?;
                let _block_offset = cur.u32()?;
                let _xattr = cur.u32()?;
                if size >= MAX_FILE_SIZE {
                    bail!("file inode {number} claims {size} bytes");
                }
                skip_block_list(&mut cur, sb, number, fragment, size)?;
            }
            (InodeType::Symlink, extended) => {
                let _links = cur.u32()?;
                let target_size = cur.u32()?;
                if target_size >= 256 {
                    bail!("symlink inode {number} has a target of {target_size} bytes (at most 255 are read)");
                }
                cur.take(target_size as usize)?;
                if extended {
                    cur.u32()?;
                }
            }
            (InodeType::BlockDevice | InodeType::CharDevice, false) => {
                cur.take(8)?;
            }
            (InodeType::BlockDevice | InodeType::CharDevice, true) => {
                cur.take(12)?;
            }
            (InodeType::Fifo | InodeType::Socket, false) => {
                cur.take(4)?;
            }
            (InodeType::Fifo | InodeType::Socket, true) => {
                cur.take(8)?;
            }
        }
        if number == 0 || number > sb.inode_count {
            bail!(
                "an inode is numbered {number}, outside 1..={} from the superblock",
                sb.inode_count
            );
        }
        if walked
            .by_number
            .insert(number, WalkedInode { kind, listing })
            .is_some()
        {
            bail!("inode number {number} appears twice");
        }
        walked.by_offset.insert(offset, number);
    }
    if walked.by_number.len() != sb.inode_count as usize {
        bail!(
            "its inode table holds {} inodes but the superblock claims {}",
            walked.by_number.len(),
            sb.inode_count
        );
    }
    Ok(walked)
}

/// A file inode is followed by one 4-byte size per data block; their number follows from the
/// file size, so a lying size must not be believed beyond the bytes that are there.
fn skip_block_list(
    cur: &mut Bytes,
    sb: &SuperBlock,
    number: u32,
    fragment: u32,
    size: u64,
) -> Result<()> {
    let blocks = if fragment == NO_FRAGMENT {
        size.div_ceil(u64::from(sb.block_size))
    } else {
        size >> sb.block_log
    };
    let room = cur.remaining() as u64 / 4;
    if blocks > room {
        bail!("file inode {number} claims {size} bytes in {blocks} blocks, but its block list is cut off");
    }
    cur.take(blocks as usize * 4)?;
    Ok(())
}

/// The root reference (metadata block << 16 | offset) must point at an inode the walk saw, and
/// that inode must be a directory: backhand parses the root separately from the table walk.
pub(super) fn root_inode(
    area: &MetadataArea,
    walked: &WalkedInodes,
    sb: &SuperBlock,
) -> Result<u32> {
    let block = sb.root_inode >> 16;
    let offset = (sb.root_inode & 0xffff) as usize;
    let number = area
        .block_at
        .get(&block)
        .and_then(|start| walked.by_offset.get(&(start + offset)))
        .copied()
        .ok_or_else(|| anyhow!("its root inode reference does not point at an inode"))?;
    if walked.by_number[&number].listing.is_none() {
        bail!("its root inode is not a directory");
    }
    Ok(number)
}
