//! Feeds arbitrary bytes to the DDI reader (GPT, partition roles, verity superblock, signature
//! JSON) and, when it accepts them, to the hash tree check: what `verify`, `inspect`, `diff` and
//! `sign` run before the SquashFS reader on any file that starts with a protective MBR. Any
//! panic (debug assertions and overflow checks are on), abort, timeout or allocation beyond
//! libFuzzer's limit is a finding.
//!
//! A mutated GPT almost always fails its CRC32s, and the backup copy must equal the primary, so
//! blind mutation would stop at the first checksum. Each input is therefore also read a second
//! time with the tables made consistent: the primary header's entry array and header CRCs
//! recomputed, and the backup array and header rebuilt from the primary. The fuzzer's changes to
//! LBAs, partition entries and the verity superblock then reach the checks behind the CRCs, as
//! they would for someone who recomputes the checksums of a crafted image.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sysext_assembler::disk::ddi;
use sysext_assembler::disk::gpt::crc32;

const SECTOR: usize = 512;
const ARRAY: usize = 128 * 128;
const ARRAY_SECTORS: u64 = (ARRAY / SECTOR) as u64;

fn check(data: &[u8]) {
    let mut file = Cursor::new(data);
    if let Ok(layout) = ddi::read(&mut file, data.len() as u64) {
        let _ = ddi::check_tree(&mut file, &layout);
    }
}

fn seal_header(header: &mut [u8]) {
    header[16..20].fill(0);
    let crc = crc32(&header[..92]);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// `data` with consistent GPT checksums and backup, or `None` when there is no room for them.
fn with_consistent_tables(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() % SECTOR != 0 || data.len() / SECTOR < 2 + 2 * ARRAY_SECTORS as usize + 2 {
        return None;
    }
    let mut fixed = data.to_vec();
    let last = (fixed.len() / SECTOR - 1) as u64;
    let entries_lba = u64::from_le_bytes(fixed[SECTOR + 72..SECTOR + 80].try_into().unwrap());
    let start = usize::try_from(entries_lba.checked_mul(SECTOR as u64)?).ok()?;
    let array = fixed.get(start..start.checked_add(ARRAY)?)?.to_vec();
    let array_crc = crc32(&array).to_le_bytes();
    let mut header = fixed[SECTOR..2 * SECTOR].to_vec();
    header[88..92].copy_from_slice(&array_crc);
    seal_header(&mut header);
    fixed[SECTOR..2 * SECTOR].copy_from_slice(&header);
    let backup_entries = last - ARRAY_SECTORS;
    let at = backup_entries as usize * SECTOR;
    fixed[at..at + ARRAY].copy_from_slice(&array);
    header[24..32].copy_from_slice(&last.to_le_bytes());
    header[32..40].copy_from_slice(&1u64.to_le_bytes());
    header[72..80].copy_from_slice(&backup_entries.to_le_bytes());
    seal_header(&mut header);
    let at = last as usize * SECTOR;
    fixed[at..at + SECTOR].copy_from_slice(&header);
    Some(fixed)
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = with_consistent_tables(data) {
        check(&fixed);
    }
});
