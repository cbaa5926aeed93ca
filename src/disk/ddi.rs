//! Discoverable Disk Images (UAPI.2, the Discoverable Partitions Specification): the SquashFS as
//! the root partition of the image's architecture, its dm-verity hash tree in the root-verity
//! partition and, once signed, a root-verity-sig partition holding the PKCS#7 signature of the
//! root hash. systemd-sysext then mounts the file system through dm-verity, so the kernel checks
//! every block at every read, and with an image policy it refuses images no trusted key signed.
//!
//! The layout follows what `systemd-repart --make-ddi=sysext` writes, field by field, except
//! where repart draws from its seed: here the verity salt is the SHA-256 of the file system,
//! and the disk GUID, the superblock UUID and the signature partition's UUID are derived from
//! the root hash, so every byte depends only on the payload and the options. As systemd's
//! verity conventions say, the root partition's UUID is the first half of the root hash and the
//! verity partition's the second half.
//!
//! Reading is strict (the file may come from anywhere): exactly one root, one root-verity and
//! at most one root-verity-sig partition, all of one architecture, inside the file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::disk::gpt::{self, Guid, Partition, Table, SECTOR};
use crate::disk::verity::{self, Superblock, BLOCK_SIZE};
use crate::hex;
use crate::names::{self, Arch};

/// What `build` writes: a bare SquashFS (the default, merged by every systemd with sysext) or a
/// DDI (merged through dm-verity; needs a kernel with dm-verity and, to be refused when
/// unsigned, an image policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ImageFormat {
    #[default]
    Squashfs,
    Ddi,
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        names::write_choice(self, f)
    }
}

/// Where the first partition starts, as libfdisk decides it for systemd-repart: at 1 MiB (the
/// first usable sector then also 2048), except on disks of at most 4 MiB, where it starts at the
/// first 4 KiB boundary after the primary table (sector 40, the first usable sector 34). The
/// keepalived images are below 4 MiB; large payloads get the 1 MiB layout, as with repart.
const MIB_ALIGNED_START: u64 = 1 << 20;
const SMALL_DISK_START: u64 = (gpt::PRIMARY_SECTORS * SECTOR).div_ceil(ALIGNMENT) * ALIGNMENT;
const SMALL_DISK_MAX: u64 = 4 * MIB_ALIGNED_START;
/// Partitions start and end on 4 KiB boundaries (the verity block size, and repart's grain).
const ALIGNMENT: u64 = 4096;
/// Size of the signature partition: repart's fixed size for it. The JSON, a 2048-bit RSA
/// signature and its certificate take about 2.5 KiB.
const SIGNATURE_PARTITION_SIZE: u64 = 16 * 1024;
/// GPT attribute bit 60: read-only, which repart sets on the root and root-verity partitions
/// (not on the signature partition, which it leaves without attributes).
const READ_ONLY: u64 = 1 << 60;

/// What a partition of a system extension DDI holds (UAPI.2): the file system, its hash tree, or
/// the signature of the tree's root hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionRole {
    Root,
    Verity,
    Signature,
}

impl PartitionRole {
    const ALL: [PartitionRole; 3] = [
        PartitionRole::Root,
        PartitionRole::Verity,
        PartitionRole::Signature,
    ];

    /// The partition type GUID of this role for `arch`.
    pub fn type_guid(self, arch: Arch) -> &'static str {
        match (arch, self) {
            (Arch::X86_64, PartitionRole::Root) => "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            (Arch::X86_64, PartitionRole::Verity) => "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
            (Arch::X86_64, PartitionRole::Signature) => "41092b05-9fc8-4523-994f-2def0408b176",
            (Arch::Arm64, PartitionRole::Root) => "b921b045-1df0-41c3-af44-4c6f280d3fae",
            (Arch::Arm64, PartitionRole::Verity) => "df3300ce-d69f-4c92-978c-9bfb0f38d820",
            (Arch::Arm64, PartitionRole::Signature) => "6db69de6-29f4-4758-a7a5-962190f00ce3",
        }
    }

    /// The role as the type's name says it, in messages.
    fn what(self) -> &'static str {
        match self {
            PartitionRole::Root => "root",
            PartitionRole::Verity => "root-verity",
            PartitionRole::Signature => "root-verity-sig",
        }
    }

    /// The partition name repart gives: the type's name with the architecture.
    fn partition_name(self, arch: Arch) -> String {
        match self {
            PartitionRole::Root => format!("root-{arch}"),
            PartitionRole::Verity => format!("root-{arch}-verity"),
            PartitionRole::Signature => format!("root-{arch}-verity-sig"),
        }
    }
}

const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

/// The root-verity-sig partition's content (systemd's format): the root hash it signs, the
/// SHA-256 of the signing certificate (DER), and the detached PKCS#7 signature (DER, base64).
/// Field order is repart's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureJson {
    #[serde(rename = "rootHash")]
    pub root_hash: String,
    #[serde(
        rename = "certificateFingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_fingerprint: Option<String>,
    pub signature: String,
}

fn derived_guid(label: &str, root_hash: &[u8]) -> Guid {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update(root_hash);
    Guid::v4_from_hash(&hasher.finalize())
}

/// What `write` put into the image.
pub struct Written {
    pub root_hash: [u8; 32],
    pub salt: Vec<u8>,
    pub size: u64,
}

/// Writes the unsigned DDI of the file system in `filesystem` (`len` bytes). The verity salt is
/// the file system's SHA-256 and the superblock UUID is derived from the salt: content, not
/// chance, as everything else in the image.
pub fn write_unsigned(
    out: &mut File,
    arch: Arch,
    filesystem: &mut File,
    len: u64,
) -> Result<Written> {
    filesystem.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let hashed = io::copy(&mut (&mut *filesystem).take(len), &mut hasher)?;
    ensure!(hashed == len, "the file system is shorter than written");
    let salt = hasher.finalize();
    let superblock_uuid = derived_guid("verity superblock", &salt).0;
    write(out, arch, filesystem, len, &salt, superblock_uuid, None)
}

/// Writes a DDI to `out` (an empty file) holding the `data_len` bytes of `data` (the SquashFS)
/// as root partition, its hash tree, and `signature` if given. `salt` and `superblock_uuid`
/// are the tree's: derived from the content by `build`, kept from the unsigned image by `sign`.
pub fn write(
    out: &mut File,
    arch: Arch,
    data: &mut (impl Read + Seek),
    data_len: u64,
    salt: &[u8],
    superblock_uuid: [u8; 16],
    signature: Option<&SignatureJson>,
) -> Result<Written> {
    let root_size = data_len.div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    data.seek(SeekFrom::Start(0))?;
    let mut padded = data
        .take(data_len)
        .chain(io::repeat(0).take(root_size - data_len));
    let tree = verity::compute(&mut padded, root_size / BLOCK_SIZE, salt, superblock_uuid)?;

    let signature_json = match signature {
        Some(sig) => {
            ensure!(
                sig.root_hash == hex(&tree.root_hash),
                "the signature is for root hash {}, the image's is {}",
                sig.root_hash,
                hex(&tree.root_hash)
            );
            let text = serde_json::to_string(sig).expect("signature JSON serialises");
            ensure!(
                text.len() as u64 <= SIGNATURE_PARTITION_SIZE,
                "the signature takes {} bytes, more than the {SIGNATURE_PARTITION_SIZE} its \
                 partition holds: use a smaller certificate (no chain is needed)",
                text.len()
            );
            Some(text)
        }
        None => None,
    };

    let spec_of = |role: PartitionRole| (role.type_guid(arch), role.partition_name(arch));
    let ((root_type, root_name), (verity_type, verity_name)) =
        (spec_of(PartitionRole::Root), spec_of(PartitionRole::Verity));
    let root_uuid = Guid(tree.root_hash[..16].try_into().unwrap());
    let verity_uuid = Guid(tree.root_hash[16..].try_into().unwrap());
    let mut specs = vec![
        (root_type, root_uuid, root_size, READ_ONLY, root_name),
        (
            verity_type,
            verity_uuid,
            tree.area.len() as u64,
            READ_ONLY,
            verity_name,
        ),
    ];
    if signature_json.is_some() {
        let uuid = derived_guid("root-verity-sig partition", &tree.root_hash);
        let (signature_type, signature_name) = spec_of(PartitionRole::Signature);
        specs.push((
            signature_type,
            uuid,
            SIGNATURE_PARTITION_SIZE,
            0,
            signature_name,
        ));
    }
    let partitions_size: u64 = specs
        .iter()
        .map(|(_, _, size, _, _)| size.div_ceil(ALIGNMENT) * ALIGNMENT)
        .sum();
    // The backup table follows the last partition, the file rounded up to 4 KiB; everything up
    // to the backup table is usable, as repart leaves it.
    let disk_size_from = |start: u64| {
        (start + partitions_size + gpt::BACKUP_SECTORS * SECTOR).div_ceil(ALIGNMENT) * ALIGNMENT
    };
    let (first_usable_lba, start) = if disk_size_from(SMALL_DISK_START) <= SMALL_DISK_MAX {
        (gpt::PRIMARY_SECTORS, SMALL_DISK_START)
    } else {
        (MIB_ALIGNED_START / SECTOR, MIB_ALIGNED_START)
    };
    let disk_size = disk_size_from(start);
    let mut offset = start;
    let mut partitions = Vec::new();
    for (type_guid, uuid, size, attributes, name) in specs {
        let first_lba = offset / SECTOR;
        offset += size.div_ceil(ALIGNMENT) * ALIGNMENT;
        partitions.push(Partition {
            type_guid: Guid::parse(type_guid),
            uuid,
            first_lba,
            last_lba: offset / SECTOR - 1,
            attributes,
            name,
        });
    }
    let table = Table {
        disk_guid: derived_guid("disk", &tree.root_hash),
        disk_sectors: disk_size / SECTOR,
        first_usable_lba,
        last_usable_lba: disk_size / SECTOR - gpt::BACKUP_SECTORS - 1,
        partitions,
    };

    out.set_len(0)?;
    out.set_len(disk_size)?;
    {
        let mut writer = io::BufWriter::with_capacity(1 << 20, &mut *out);
        writer.seek(SeekFrom::Start(table.partitions[0].offset()))?;
        data.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut data.take(data_len), &mut writer)?;
        ensure!(
            copied == data_len,
            "the file system shrank while it was copied"
        );
        writer.seek(SeekFrom::Start(table.partitions[1].offset()))?;
        writer.write_all(&tree.area)?;
        if let Some(text) = &signature_json {
            writer.seek(SeekFrom::Start(table.partitions[2].offset()))?;
            writer.write_all(text.as_bytes())?;
        }
        gpt::write(&table, &mut writer)?;
        writer.flush()?;
    }
    Ok(Written {
        root_hash: tree.root_hash,
        salt: salt.to_vec(),
        size: disk_size,
    })
}

/// A DDI as read back: its table, the partitions that matter, and the verity superblock.
#[derive(Clone, Debug)]
pub struct Ddi {
    pub table: Table,
    pub arch: Arch,
    pub root: Partition,
    pub verity: Partition,
    pub signature: Option<Partition>,
    pub superblock: Superblock,
    pub signature_json: Option<SignatureJson>,
}

impl Ddi {
    /// The root hash the partition UUIDs carry (systemd finds the partitions of a root hash
    /// this way); `check_tree` proves it is the data's.
    pub fn root_hash_from_uuids(&self) -> [u8; 32] {
        let mut hash = [0u8; 32];
        hash[..16].copy_from_slice(&self.root.uuid.0);
        hash[16..].copy_from_slice(&self.verity.uuid.0);
        hash
    }

    /// A reader of the root partition alone: the SquashFS.
    pub fn root_reader<R: Read + Seek>(&self, file: R) -> BufReader<Window<R>> {
        BufReader::with_capacity(
            1 << 16,
            Window {
                file,
                start: self.root.offset(),
                len: self.root.size(),
                pos: 0,
            },
        )
    }
}

/// Whether the file starts like a GPT disk (a protective MBR), as opposed to a SquashFS.
pub fn looks_like_ddi(file: &mut File) -> Result<bool> {
    let mut first = [0u8; SECTOR as usize];
    file.seek(SeekFrom::Start(0))?;
    let read = read_up_to(file, &mut first)?;
    Ok(read == first.len() && gpt::is_protective_mbr(&first))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match file.read(&mut buf[total..])? {
            0 => break,
            n => total += n,
        }
    }
    Ok(total)
}

/// Reads and checks the structure of a DDI (not yet the hash tree: see [`check_tree`]).
pub fn read(file: &mut (impl Read + Seek), len: u64) -> Result<Ddi> {
    let table = gpt::read(file, len)?;
    let mut found: Vec<(Arch, PartitionRole, &Partition)> = Vec::new();
    for p in &table.partitions {
        let role = ARCHES.iter().find_map(|&arch| {
            PartitionRole::ALL
                .into_iter()
                .find(|role| Guid::parse(role.type_guid(arch)) == p.type_guid)
                .map(|role| (arch, role))
        });
        match role {
            Some((arch, role)) => found.push((arch, role, p)),
            None => bail!(
                "partition {:?} has type {}, which is not a root, root-verity or \
                 root-verity-sig partition of x86-64 or arm64: not a system extension DDI",
                p.name,
                p.type_guid
            ),
        }
    }
    let arch = match found.first() {
        Some((arch, _, _)) => *arch,
        None => bail!("the partition table is empty"),
    };
    ensure!(
        found.iter().all(|(a, _, _)| *a == arch),
        "the partitions are of more than one architecture"
    );
    let pick = |role: PartitionRole| -> Result<Option<Partition>> {
        let mut of_role = found.iter().filter(|(_, r, _)| *r == role);
        let first = of_role.next().map(|(_, _, p)| (*p).clone());
        ensure!(
            of_role.next().is_none(),
            "more than one {} partition",
            role.what()
        );
        Ok(first)
    };
    let root = pick(PartitionRole::Root)?.context("no root partition")?;
    let verity = pick(PartitionRole::Verity)?
        .context("no root-verity partition: a DDI without a hash tree is not protected")?;
    let signature = pick(PartitionRole::Signature)?;

    let mut head = vec![0u8; BLOCK_SIZE as usize];
    file.seek(SeekFrom::Start(verity.offset()))?;
    file.read_exact(&mut head)
        .context("cannot read the verity superblock")?;
    let superblock =
        Superblock::decode(&head).context("the root-verity partition holds no usable hash tree")?;
    // The partitions lie inside the file (gpt::read checked), so comparing the block count with
    // the root partition's bounds every size computed from it by the file's length.
    ensure!(
        superblock.data_blocks >= 1,
        "the verity superblock covers 0 data blocks: the hash tree protects nothing"
    );
    ensure!(
        superblock.data_blocks <= root.size() / BLOCK_SIZE,
        "the hash tree covers {} blocks, more than the root partition's {}",
        superblock.data_blocks,
        root.size() / BLOCK_SIZE
    );
    ensure!(
        verity::area_size(superblock.data_blocks).is_some_and(|size| size <= verity.size()),
        "the root-verity partition is too small for a tree of {} blocks",
        superblock.data_blocks
    );
    let signature_json = match &signature {
        Some(p) => Some(read_signature(file, p)?),
        None => None,
    };
    Ok(Ddi {
        table,
        arch,
        root,
        verity,
        signature,
        superblock,
        signature_json,
    })
}

fn read_signature(file: &mut (impl Read + Seek), p: &Partition) -> Result<SignatureJson> {
    // systemd refuses signature partitions above 4 MiB; nothing this tool writes comes close.
    ensure!(
        p.size() <= 4 << 20,
        "the root-verity-sig partition is larger than 4 MiB"
    );
    let mut bytes = vec![0u8; p.size() as usize];
    file.seek(SeekFrom::Start(p.offset()))?;
    file.read_exact(&mut bytes)
        .context("cannot read the root-verity-sig partition")?;
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let json: SignatureJson = serde_json::from_slice(&bytes[..end])
        .context("the root-verity-sig partition does not hold systemd's signature JSON")?;
    Ok(json)
}

/// Recomputes the hash tree from the root partition and compares it with the verity partition
/// byte for byte. Returns the recomputed root hash, or what differs.
pub fn check_tree(
    file: &mut (impl Read + Seek),
    ddi: &Ddi,
) -> Result<std::result::Result<[u8; 32], String>> {
    let sb = &ddi.superblock;
    let tree = {
        let mut data = ddi
            .root_reader(&mut *file)
            .take(sb.data_blocks * BLOCK_SIZE);
        verity::compute(&mut data, sb.data_blocks, &sb.salt, sb.uuid)
            .context("cannot read the root partition")?
    };
    let mut stored = vec![0u8; tree.area.len()];
    file.seek(SeekFrom::Start(ddi.verity.offset()))?;
    file.read_exact(&mut stored)
        .context("cannot read the hash tree")?;
    if let Some(at) = stored.iter().zip(&tree.area).position(|(a, b)| a != b) {
        return Ok(Err(format!(
            "the hash tree differs from the one computed from the root partition at byte {at} \
             of the root-verity partition: a data block or the tree was changed, and the kernel \
             would fail reads of the changed blocks"
        )));
    }
    if tree.root_hash != ddi.root_hash_from_uuids() {
        return Ok(Err(format!(
            "the root hash is {}, but the partition UUIDs say {} (they must be its two halves)",
            hex(&tree.root_hash),
            hex(&ddi.root_hash_from_uuids())
        )));
    }
    Ok(Ok(tree.root_hash))
}

/// A window onto one partition of the image file, so the SquashFS reader sees offset 0 at the
/// partition's start and nothing past its end.
pub struct Window<R> {
    file: R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the partition",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_repart() {
        assert_eq!(
            PartitionRole::ALL.map(|role| role.partition_name(Arch::Arm64)),
            ["root-arm64", "root-arm64-verity", "root-arm64-verity-sig"]
        );
    }

    #[test]
    fn signature_json_has_repart_field_order() {
        let sig = SignatureJson {
            root_hash: "ab".into(),
            certificate_fingerprint: Some("cd".into()),
            signature: "ZQ==".into(),
        };
        assert_eq!(
            serde_json::to_string(&sig).unwrap(),
            r#"{"rootHash":"ab","certificateFingerprint":"cd","signature":"ZQ=="}"#
        );
    }
}
