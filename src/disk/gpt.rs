//! GUID partition tables (UEFI 2.10, section 5.3), written and read for DDIs: a protective MBR,
//! the primary header and entry array at the start, the backup entry array and header at the
//! end, with their CRC32s.
//!
//! Written by hand rather than with a partitioning library because every byte must be a
//! function of the content (a library would pick a random disk GUID, or align as it pleases),
//! and read strictly because `verify`, `inspect` and `diff` open files downloaded from anywhere:
//! every offset is checked against the file before it is used.

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, ensure, Context, Result};

pub const SECTOR: u64 = 512;
const ENTRY_SIZE: usize = 128;
/// Entries in the array: the minimum UEFI requires, and what every partitioning tool writes.
const ENTRY_COUNT: usize = 128;
/// Sectors the entry array takes (128 × 128 bytes).
const ENTRY_SECTORS: u64 = (ENTRY_COUNT * ENTRY_SIZE) as u64 / SECTOR;
const HEADER_SIZE: usize = 92;
const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
/// A partition name is 36 UTF-16 code units.
const NAME_UNITS: usize = 36;

/// Sectors the primary table takes before the first usable sector: MBR, header, entry array.
pub const PRIMARY_SECTORS: u64 = 2 + ENTRY_SECTORS;
/// Sectors the backup table takes after the last usable sector: entry array, header.
pub const BACKUP_SECTORS: u64 = ENTRY_SECTORS + 1;

/// A GUID in the order it is written as text (RFC 4122); GPT stores the first three fields
/// little-endian, which [`Guid::to_gpt`] and [`Guid::from_gpt`] handle.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; only for the constants of this crate.
    pub fn parse(text: &str) -> Guid {
        let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
        assert_eq!(hex.len(), 32, "GUID {text}");
        let mut bytes = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let digits = std::str::from_utf8(pair).expect("ASCII GUID");
            bytes[i] = u8::from_str_radix(digits, 16).expect("hex GUID");
        }
        Guid(bytes)
    }

    /// A version 4 (random-looking) GUID made from the first 16 bytes of `hash`, so that a GUID
    /// derived from content still reads as a valid UUID.
    pub fn v4_from_hash(hash: &[u8]) -> Guid {
        let mut bytes: [u8; 16] = hash[..16].try_into().expect("hash of 16 bytes or more");
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }

    fn to_gpt(self) -> [u8; 16] {
        let mut b = self.0;
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        b
    }

    fn from_gpt(bytes: &[u8]) -> Guid {
        let mut b: [u8; 16] = bytes.try_into().expect("16 bytes");
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        Guid(b)
    }

    pub fn is_zero(self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One partition; sectors are 512 bytes, `last_lba` inclusive as on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub type_guid: Guid,
    pub uuid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

impl Partition {
    /// Byte offset of the partition. For a table [`read`] returned, offset and size are
    /// checked to lie inside the file; tables `ddi::write` builds are small by construction.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }

    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// A whole table: the disk is `disk_sectors` long and partitions lie between the usable bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub disk_guid: Guid,
    pub disk_sectors: u64,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    pub partitions: Vec<Partition>,
}

/// CRC-32 as UEFI uses it (IEEE 802.3, reflected, the same as zlib's). Public so that the DDI
/// tests and the fuzz target can reseal headers they change.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn entry_array(partitions: &[Partition]) -> Result<Vec<u8>> {
    ensure!(partitions.len() <= ENTRY_COUNT, "too many partitions");
    let mut array = vec![0u8; ENTRY_COUNT * ENTRY_SIZE];
    for (entry, p) in array.chunks_mut(ENTRY_SIZE).zip(partitions) {
        entry[0..16].copy_from_slice(&p.type_guid.to_gpt());
        entry[16..32].copy_from_slice(&p.uuid.to_gpt());
        entry[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        entry[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        entry[48..56].copy_from_slice(&p.attributes.to_le_bytes());
        let units: Vec<u16> = p.name.encode_utf16().collect();
        ensure!(
            units.len() <= NAME_UNITS,
            "partition name {:?} is too long",
            p.name
        );
        for (i, unit) in units.iter().enumerate() {
            entry[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
    Ok(array)
}

fn header(table: &Table, primary: bool, entries_crc: u32) -> [u8; SECTOR as usize] {
    let last_lba = table.disk_sectors - 1;
    let (my_lba, alternate_lba, entries_lba) = if primary {
        (1, last_lba, 2)
    } else {
        (last_lba, 1, last_lba - ENTRY_SECTORS)
    };
    let mut h = [0u8; SECTOR as usize];
    h[0..8].copy_from_slice(SIGNATURE);
    h[8..12].copy_from_slice(&REVISION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
    h[40..48].copy_from_slice(&table.first_usable_lba.to_le_bytes());
    h[48..56].copy_from_slice(&table.last_usable_lba.to_le_bytes());
    h[56..72].copy_from_slice(&table.disk_guid.to_gpt());
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRY_COUNT as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32(&h[..HEADER_SIZE]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn protective_mbr(disk_sectors: u64) -> [u8; SECTOR as usize] {
    let mut mbr = [0u8; SECTOR as usize];
    let entry = &mut mbr[446..462];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    entry[4] = 0xEE;
    entry[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    entry[12..16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

/// Writes the MBR, both headers and both entry arrays of `table` into `out`, which must already
/// be `disk_sectors` long (partition contents are the caller's).
pub fn write(table: &Table, out: &mut (impl Write + Seek)) -> Result<()> {
    let entries = entry_array(&table.partitions)?;
    let entries_crc = crc32(&entries);
    let last_lba = table.disk_sectors - 1;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&protective_mbr(table.disk_sectors))?;
    out.write_all(&header(table, true, entries_crc))?;
    out.write_all(&entries)?;
    out.seek(SeekFrom::Start((last_lba - ENTRY_SECTORS) * SECTOR))?;
    out.write_all(&entries)?;
    out.write_all(&header(table, false, entries_crc))?;
    Ok(())
}

/// Whether `first_sector` (the file's first 512 bytes) starts a GPT disk: a protective MBR.
pub fn is_protective_mbr(first_sector: &[u8]) -> bool {
    first_sector.len() >= SECTOR as usize
        && first_sector[510..512] == [0x55, 0xAA]
        && first_sector[446 + 4] == 0xEE
}

fn read_at(file: &mut (impl Read + Seek), offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)
        .with_context(|| format!("cannot read {len} bytes at offset {offset}"))?;
    Ok(buf)
}

/// The byte range `first_lba..=last_lba` covers, or `None` when it does not fit a u64 (only a
/// hostile table claims such sectors; a table that [`read`] returned always fits its file).
fn byte_range(first_lba: u64, last_lba: u64) -> Option<(u64, u64)> {
    let start = first_lba.checked_mul(SECTOR)?;
    let end = last_lba.checked_add(1)?.checked_mul(SECTOR)?;
    (start < end).then_some((start, end))
}

/// Parses and checks one header and its entry array; `Ok` holds the table it describes. Every
/// number is checked in u64 without wrapping before it becomes an offset: the usable range and
/// every partition lie inside the file, between the primary and the backup structures, and no
/// two partitions share a byte.
fn read_header(file: &mut (impl Read + Seek), lba: u64, file_len: u64) -> Result<Table> {
    let h = read_at(file, lba * SECTOR, SECTOR as usize)?;
    let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap());
    ensure!(
        &h[0..8] == SIGNATURE,
        "no GPT header (signature \"EFI PART\" missing)"
    );
    ensure!(
        u32_at(8) == REVISION,
        "GPT revision {:#x} (expected 1.0)",
        u32_at(8)
    );
    ensure!(
        u32_at(12) as usize == HEADER_SIZE,
        "GPT header size {} (expected {HEADER_SIZE})",
        u32_at(12)
    );
    let mut zeroed = h[..HEADER_SIZE].to_vec();
    zeroed[16..20].fill(0);
    ensure!(crc32(&zeroed) == u32_at(16), "GPT header checksum mismatch");
    ensure!(
        u64_at(24) == lba,
        "GPT header at sector {lba} says it is at {}",
        u64_at(24)
    );
    // `read` checked that the file holds more sectors than both tables take.
    let disk_sectors = file_len / SECTOR;
    let last_lba = disk_sectors - 1;
    let primary = lba == 1;
    let alternate_lba = u64_at(32);
    let expected_alternate = if primary { last_lba } else { 1 };
    ensure!(
        alternate_lba == expected_alternate,
        "GPT header at sector {lba} puts the other header at sector {alternate_lba}, not at \
         {expected_alternate} (the file has {disk_sectors} sectors: the file may be cut short or \
         extended)"
    );
    let (first_usable_lba, last_usable_lba) = (u64_at(40), u64_at(48));
    let entries_lba = u64_at(72);
    let (count, size) = (u32_at(80) as usize, u32_at(84) as usize);
    ensure!(
        count == ENTRY_COUNT && size == ENTRY_SIZE,
        "GPT entry array of {count} entries of {size} bytes (expected {ENTRY_COUNT} of {ENTRY_SIZE})"
    );
    ensure!(
        first_usable_lba >= PRIMARY_SECTORS
            && last_usable_lba >= first_usable_lba
            && last_usable_lba < disk_sectors - BACKUP_SECTORS,
        "GPT usable range {first_usable_lba}..={last_usable_lba} does not fit between the \
         tables of the file's {disk_sectors} sectors (the file may be cut short)"
    );
    // The entry array lies outside the usable range: after the header and before the first
    // usable sector (primary), or after the last usable sector and before the header (backup).
    let entries_fit = match entries_lba.checked_add(ENTRY_SECTORS) {
        Some(end) if primary => entries_lba >= 2 && end <= first_usable_lba,
        Some(end) => entries_lba > last_usable_lba && end <= lba,
        None => false,
    };
    ensure!(
        entries_fit,
        "GPT entry array at sector {entries_lba} overlaps the usable range or a header, or lies \
         beyond the end of the file"
    );
    let entries = read_at(file, entries_lba * SECTOR, ENTRY_COUNT * ENTRY_SIZE)?;
    ensure!(
        crc32(&entries) == u32_at(88),
        "GPT entry array checksum mismatch"
    );

    let mut partitions = Vec::new();
    let mut ranges = Vec::new();
    for (index, e) in entries.chunks(ENTRY_SIZE).enumerate() {
        let type_guid = Guid::from_gpt(&e[0..16]);
        if type_guid.is_zero() {
            continue;
        }
        let first_lba = u64::from_le_bytes(e[32..40].try_into().unwrap());
        let last_lba = u64::from_le_bytes(e[40..48].try_into().unwrap());
        ensure!(
            first_lba >= first_usable_lba && first_lba <= last_lba && last_lba <= last_usable_lba,
            "GPT partition {} spans sectors {first_lba}..={last_lba}, outside the usable \
             range {first_usable_lba}..={last_usable_lba}",
            index + 1
        );
        // Inside the usable range, so inside the file: the byte range cannot overflow.
        let (start, end) = byte_range(first_lba, last_lba)
            .filter(|&(_, end)| end <= file_len)
            .with_context(|| format!("GPT partition {} lies beyond the file", index + 1))?;
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]]))
            .take_while(|&u| u != 0)
            .collect();
        ranges.push((start, end, partitions.len()));
        partitions.push(Partition {
            type_guid,
            uuid: Guid::from_gpt(&e[16..32]),
            first_lba,
            last_lba,
            attributes: u64::from_le_bytes(e[48..56].try_into().unwrap()),
            name: String::from_utf16_lossy(&units),
        });
    }
    // Byte ranges, half-open: two partitions overlap when one starts before the other ends.
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        ensure!(
            end <= start,
            "GPT partitions {:?} and {:?} overlap (bytes {}..{} and {}..{})",
            partitions[a].name,
            partitions[b].name,
            pair[0].0,
            end,
            start,
            pair[1].1
        );
    }
    Ok(Table {
        disk_guid: Guid::from_gpt(&h[56..72]),
        disk_sectors,
        first_usable_lba,
        last_usable_lba,
        partitions,
    })
}

/// Reads the table of a file of `file_len` bytes, checking the primary and the backup copy and
/// that they agree: a DDI whose two copies differ would be read differently by different tools.
pub fn read(file: &mut (impl Read + Seek), file_len: u64) -> Result<Table> {
    ensure!(
        file_len.is_multiple_of(SECTOR) && file_len / SECTOR > PRIMARY_SECTORS + BACKUP_SECTORS,
        "{file_len} bytes is not a whole number of 512-byte sectors large enough for a GPT"
    );
    let primary = read_header(file, 1, file_len).context("the primary GPT is invalid")?;
    let last_lba = file_len / SECTOR - 1;
    let backup = read_header(file, last_lba, file_len)
        .context("the backup GPT at the end of the file is invalid (the file may be cut short)")?;
    if backup != primary {
        bail!("the primary and backup GPT differ");
    }
    Ok(primary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guids_use_mixed_endianness_on_disk() {
        let guid = Guid::parse("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(guid.to_string(), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(&guid.to_gpt()[..4], &[0xe3, 0xbc, 0x68, 0x4f]);
        assert_eq!(Guid::from_gpt(&guid.to_gpt()), guid);
    }

    #[test]
    fn a_written_table_reads_back_and_damage_is_named() {
        let disk_sectors = 200;
        let table = Table {
            disk_guid: Guid::v4_from_hash(&[3; 32]),
            disk_sectors,
            first_usable_lba: PRIMARY_SECTORS,
            last_usable_lba: disk_sectors - BACKUP_SECTORS - 1,
            partitions: vec![Partition {
                type_guid: Guid::parse("4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
                uuid: Guid([1; 16]),
                first_lba: 40,
                last_lba: 47,
                attributes: 1 << 60,
                name: "root-x86-64".into(),
            }],
        };
        let mut disk = std::io::Cursor::new(vec![0u8; (disk_sectors * SECTOR) as usize]);
        write(&table, &mut disk).unwrap();
        let len = disk_sectors * SECTOR;
        assert_eq!(read(&mut disk, len).unwrap(), table);

        let mut bytes = disk.into_inner();
        bytes[2 * SECTOR as usize + 40] ^= 1;
        let err = read(&mut std::io::Cursor::new(bytes), len).unwrap_err();
        assert!(
            format!("{err:#}").contains("entry array checksum"),
            "{err:#}"
        );
    }
}
