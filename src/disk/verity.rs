//! dm-verity hash trees, byte for byte as `veritysetup format` writes them (format version 1,
//! SHA-256, 4 KiB data and hash blocks, the superblock in the first block of the hash area).
//!
//! In a DDI the kernel checks every block it reads from the root partition against this tree, so
//! a changed byte on disk is an I/O error rather than a changed keepalived. The tree is computed
//! here rather than by calling veritysetup so that the build needs no device-mapper tools and
//! its salt and UUID are derived from the content instead of drawn at random; `verify` and
//! `sign` recompute it to prove that the tree shipped matches the data shipped.

use std::io::Read;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

/// Data and hash block size. 4 KiB is what veritysetup and systemd-repart use, and the page size
/// the kernel verifies in on every architecture Flatcar supports.
pub const BLOCK_SIZE: u64 = 4096;
const DIGEST_SIZE: usize = 32;
/// Hashes per hash block, a power of two (format 1 pads each digest to one).
const HASHES_PER_BLOCK: u64 = BLOCK_SIZE / DIGEST_SIZE as u64;
const SUPERBLOCK_SIZE: usize = 512;
const SIGNATURE: &[u8; 8] = b"verity\0\0";
/// Salts longer than this do not fit the on-disk superblock.
const MAX_SALT_SIZE: usize = 256;

/// The on-disk superblock (`struct verity_sb` in cryptsetup), restricted to what this tool
/// writes and reads: format version 1, SHA-256, 4 KiB blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

impl Superblock {
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        sb[0..8].copy_from_slice(SIGNATURE);
        sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
        sb[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: normal (not Chrome OS)
        sb[16..32].copy_from_slice(&self.uuid);
        sb[32..38].copy_from_slice(b"sha256");
        sb[64..68].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        sb[68..72].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        sb[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        sb[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        sb[88..88 + self.salt.len()].copy_from_slice(&self.salt);
        sb
    }

    /// Parses a superblock, refusing every variant this tool cannot recompute exactly: the
    /// caller reports the error as "not a hash tree this tool can check".
    pub fn decode(bytes: &[u8]) -> Result<Superblock> {
        ensure!(
            bytes.len() >= SUPERBLOCK_SIZE,
            "the verity superblock is cut short"
        );
        ensure!(
            &bytes[0..8] == SIGNATURE,
            "no verity superblock (the signature \"verity\" is missing)"
        );
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        ensure!(
            u32_at(8) == 1,
            "verity superblock version {} (only 1 exists)",
            u32_at(8)
        );
        ensure!(
            u32_at(12) == 1,
            "verity hash type {} (only 1, the normal format, is supported)",
            u32_at(12)
        );
        let algorithm = &bytes[32..64];
        let name_len = algorithm.iter().position(|&b| b == 0).unwrap_or(32);
        ensure!(
            &algorithm[..name_len] == b"sha256",
            "verity hash algorithm {:?} (only sha256 is supported)",
            String::from_utf8_lossy(&algorithm[..name_len])
        );
        ensure!(
            u64::from(u32_at(64)) == BLOCK_SIZE && u64::from(u32_at(68)) == BLOCK_SIZE,
            "verity block sizes {}/{} (only 4096/4096 are supported)",
            u32_at(64),
            u32_at(68)
        );
        let data_blocks = u64::from_le_bytes(bytes[72..80].try_into().unwrap());
        let salt_size = usize::from(u16::from_le_bytes(bytes[80..82].try_into().unwrap()));
        ensure!(
            salt_size <= MAX_SALT_SIZE,
            "verity salt of {salt_size} bytes (at most {MAX_SALT_SIZE} fit)"
        );
        Ok(Superblock {
            uuid: bytes[16..32].try_into().unwrap(),
            data_blocks,
            salt: bytes[88..88 + salt_size].to_vec(),
        })
    }
}

/// A complete hash area: the superblock block followed by the tree, top level first, exactly
/// what goes into the verity partition; and the root hash it hangs from.
pub struct HashTree {
    pub root_hash: [u8; 32],
    pub area: Vec<u8>,
}

/// Number of hash blocks in each level, bottom (level 0, hashing the data) first. Levels are
/// added while one block cannot cover the data, as in cryptsetup: a single data block has no
/// tree and its own hash is the root hash.
fn level_blocks(data_blocks: u64) -> Vec<u64> {
    let mut levels = Vec::new();
    let mut covered = data_blocks;
    while covered > 1 || (levels.is_empty() && data_blocks > 1) {
        covered = covered.div_ceil(HASHES_PER_BLOCK);
        levels.push(covered);
        if covered == 1 {
            break;
        }
    }
    levels
}

/// Bytes of the hash area for `data_blocks` blocks of data, superblock included; `None` when
/// that does not fit a u64 (a block count no file of this world holds).
pub fn area_size(data_blocks: u64) -> Option<u64> {
    level_blocks(data_blocks)
        .iter()
        .try_fold(1u64, |sum, &blocks| sum.checked_add(blocks))?
        .checked_mul(BLOCK_SIZE)
}

fn salted_hash(salt: &[u8], block: &[u8]) -> [u8; DIGEST_SIZE] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(block);
    hasher.finalize().into()
}

/// Computes the tree over `data_blocks` blocks read from `data` (whose length must be exactly
/// that many blocks).
pub fn compute(
    data: &mut impl Read,
    data_blocks: u64,
    salt: &[u8],
    uuid: [u8; 16],
) -> Result<HashTree> {
    if data_blocks == 0 {
        bail!("no data to protect: the file system is empty");
    }
    ensure!(salt.len() <= MAX_SALT_SIZE, "verity salt too long");
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let mut digests = Vec::with_capacity(data_blocks as usize * DIGEST_SIZE);
    for index in 0..data_blocks {
        data.read_exact(&mut block)
            .with_context(|| format!("cannot read data block {index} of {data_blocks}"))?;
        digests.extend_from_slice(&salted_hash(salt, &block));
    }

    // Each level is its digests packed into zero-padded blocks; the next level hashes those.
    let mut levels: Vec<Vec<u8>> = Vec::new();
    for blocks in level_blocks(data_blocks) {
        let mut level = std::mem::take(&mut digests);
        level.resize((blocks * BLOCK_SIZE) as usize, 0);
        digests = level
            .chunks(BLOCK_SIZE as usize)
            .flat_map(|b| salted_hash(salt, b))
            .collect();
        levels.push(level);
    }
    let root_hash: [u8; 32] = digests[..DIGEST_SIZE].try_into().unwrap();

    let superblock = Superblock {
        uuid,
        data_blocks,
        salt: salt.to_vec(),
    };
    let mut area = Vec::with_capacity(area_size(data_blocks).unwrap_or(0) as usize);
    area.extend_from_slice(&superblock.encode());
    area.resize(BLOCK_SIZE as usize, 0);
    for level in levels.iter().rev() {
        area.extend_from_slice(level);
    }
    Ok(HashTree { root_hash, area })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_cryptsetup() {
        assert_eq!(level_blocks(1), Vec::<u64>::new());
        assert_eq!(level_blocks(2), vec![1]);
        assert_eq!(level_blocks(128), vec![1]);
        assert_eq!(level_blocks(129), vec![2, 1]);
        assert_eq!(level_blocks(128 * 128), vec![128, 1]);
        assert_eq!(level_blocks(128 * 128 + 1), vec![129, 2, 1]);
        assert_eq!(area_size(129), Some(4 * BLOCK_SIZE));
        assert_eq!(area_size(u64::MAX), None);
    }

    #[test]
    fn a_single_block_is_its_own_root() {
        let data = vec![7u8; BLOCK_SIZE as usize];
        let tree = compute(&mut &data[..], 1, b"salt", [0; 16]).unwrap();
        assert_eq!(tree.root_hash, salted_hash(b"salt", &data));
        assert_eq!(tree.area.len() as u64, BLOCK_SIZE);
    }

    #[test]
    fn superblock_round_trips_and_refuses_other_formats() {
        let sb = Superblock {
            uuid: [1; 16],
            data_blocks: 42,
            salt: vec![9; 32],
        };
        let bytes = sb.encode();
        assert_eq!(Superblock::decode(&bytes).unwrap(), sb);
        let mut other = bytes;
        other[32..38].copy_from_slice(b"sha512");
        let err = Superblock::decode(&other).unwrap_err().to_string();
        assert!(err.contains("only sha256"), "{err}");
        let mut chrome = bytes;
        chrome[12] = 0;
        assert!(Superblock::decode(&chrome).is_err());
    }
}
