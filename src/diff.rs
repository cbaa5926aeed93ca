//! What differs between two images (`sysext-assembler diff`), read without mounting them: it
//! replaces mount-and-compare scripts when chasing a build that is not reproducible. The report
//! lists first the entries (added, removed, changed), then for DDIs the disk image around the
//! file system, the superblock fields, and when every entry matches but the bytes do not, which
//! tables or areas of the file differ.

use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use backhand::SuperBlock;
use itertools::{merge_join_by, EitherOrBoth};

use crate::hex;
use crate::image_reader::listing::{mode_string, utc_time};
use crate::image_reader::{compressor_name, Image, ImageEntry, Region};

/// The outcome of comparing two images.
pub struct Report {
    /// True when the two files are byte-identical.
    pub identical: bool,
    /// Human-readable lines, one difference each, ending with a summary line.
    pub text: String,
}

/// Compares two opened images (and their files, for the byte-level part).
pub fn compare(a: &Image, a_path: &Path, b: &Image, b_path: &Path) -> Result<Report> {
    let mut out = String::new();
    let entry_lines = entry_differences(a, b);
    let superblock_lines = superblock_differences(&a.superblock, &b.superblock);
    let mut region_lines = Vec::new();
    let disk_lines = disk_image_differences(a, b);
    let same_entries = entry_lines.is_empty();
    let (a_len, b_len) = (file_len(a_path)?, file_len(b_path)?);
    let identical = a_len == b_len && files_equal(a_path, b_path, 0..a_len)?;
    if same_entries && !identical {
        region_lines = region_differences(a, a_path, b, b_path)?;
    }

    for (heading, lines) in [
        ("entries", &entry_lines),
        ("disk image (DDI)", &disk_lines),
        ("superblock", &superblock_lines),
        (
            "areas of the file (every entry matches, the bytes do not)",
            &region_lines,
        ),
    ] {
        if !lines.is_empty() {
            out.push_str(&format!("{heading}:\n"));
            for line in lines {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    let summary = if identical {
        "the images are byte-identical".to_string()
    } else if same_entries {
        format!(
            "same entries, different bytes: {} disk image field(s), {} superblock field(s) and \
             {} area(s) differ",
            disk_lines.len(),
            superblock_lines.len(),
            region_lines.len()
        )
    } else {
        format!(
            "{} entry difference(s), {} superblock field(s) differ",
            entry_lines.len(),
            superblock_lines.len()
        )
    };
    out.push_str(&summary);
    out.push('\n');
    Ok(Report {
        identical,
        text: out,
    })
}

fn describe_entry(entry: &ImageEntry) -> String {
    let mut s = format!("{} {}/{}", mode_string(entry), entry.uid, entry.gid);
    if let Some(size) = entry.size {
        s.push_str(&format!(", {size} bytes"));
    }
    if let Some(target) = &entry.target {
        s.push_str(&format!(", -> {target}"));
    }
    s
}

/// Differences between entries, in path order; the root directory shows as `/`.
fn entry_differences(a: &Image, b: &Image) -> Vec<String> {
    let mut lines = Vec::new();
    let changes = entry_changes(&a.root, &b.root);
    if !changes.is_empty() {
        lines.push(format!("changed  /: {}", changes.join("; ")));
    }
    let by_path = |x: &&ImageEntry, y: &&ImageEntry| x.path.as_bytes().cmp(y.path.as_bytes());
    for pair in merge_join_by(&a.entries, &b.entries, by_path) {
        match pair {
            EitherOrBoth::Left(x) => {
                lines.push(format!("removed  /{} ({})", x.path, describe_entry(x)))
            }
            EitherOrBoth::Right(y) => {
                lines.push(format!("added    /{} ({})", y.path, describe_entry(y)))
            }
            EitherOrBoth::Both(x, y) => {
                let changes = entry_changes(x, y);
                if !changes.is_empty() {
                    lines.push(format!("changed  /{}: {}", x.path, changes.join("; ")));
                }
            }
        }
    }
    lines
}

fn entry_changes(x: &ImageEntry, y: &ImageEntry) -> Vec<String> {
    let mut changes = Vec::new();
    if x.kind != y.kind {
        changes.push(format!("type {} -> {}", x.kind.as_str(), y.kind.as_str()));
    }
    if x.mode != y.mode {
        changes.push(format!("mode {:04o} -> {:04o}", x.mode, y.mode));
    }
    if (x.uid, x.gid) != (y.uid, y.gid) {
        changes.push(format!("owner {}:{} -> {}:{}", x.uid, x.gid, y.uid, y.gid));
    }
    if x.mtime != y.mtime {
        changes.push(format!(
            "mtime {} ({}) -> {} ({})",
            x.mtime,
            utc_time(x.mtime),
            y.mtime,
            utc_time(y.mtime)
        ));
    }
    if x.size != y.size {
        changes.push(format!("size {} -> {}", opt(&x.size), opt(&y.size)));
    }
    if x.sha256 != y.sha256 {
        changes.push(format!(
            "content sha256 {} -> {}",
            opt(&x.sha256),
            opt(&y.sha256)
        ));
    }
    if x.target != y.target {
        changes.push(format!(
            "symlink target {} -> {}",
            opt(&x.target),
            opt(&y.target)
        ));
    }
    if x.device != y.device {
        changes.push(format!("device {} -> {}", opt(&x.device), opt(&y.device)));
    }
    changes
}

fn opt<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// Every superblock field that differs, as `name: a -> b`.
pub fn superblock_differences(a: &SuperBlock, b: &SuperBlock) -> Vec<String> {
    let mut lines = Vec::new();
    let mut field = |name: &str, x: &dyn Display, y: &dyn Display| {
        let (x, y) = (x.to_string(), y.to_string());
        if x != y {
            lines.push(format!("{name}: {x} -> {y}"));
        }
    };
    field("inode_count", &a.inode_count, &b.inode_count);
    field(
        "mod_time",
        &format!("{} ({})", a.mod_time, utc_time(a.mod_time)),
        &format!("{} ({})", b.mod_time, utc_time(b.mod_time)),
    );
    field("block_size", &a.block_size, &b.block_size);
    field("frag_count", &a.frag_count, &b.frag_count);
    field(
        "compressor",
        &compressor_name(a.compressor),
        &compressor_name(b.compressor),
    );
    field("block_log", &a.block_log, &b.block_log);
    field("flags", &flag_names(a.flags), &flag_names(b.flags));
    field("id_count", &a.id_count, &b.id_count);
    field(
        "root_inode",
        &format!("{:#x}", a.root_inode),
        &format!("{:#x}", b.root_inode),
    );
    field("bytes_used", &a.bytes_used, &b.bytes_used);
    for (name, x, y) in [
        ("id_table", a.id_table, b.id_table),
        ("xattr_table", a.xattr_table, b.xattr_table),
        ("inode_table", a.inode_table, b.inode_table),
        ("dir_table", a.dir_table, b.dir_table),
        ("frag_table", a.frag_table, b.frag_table),
        ("export_table", a.export_table, b.export_table),
    ] {
        field(name, &table_offset(x), &table_offset(y));
    }
    lines
}

fn table_offset(offset: u64) -> String {
    if offset == u64::MAX {
        "unset".to_string()
    } else {
        offset.to_string()
    }
}

/// Superblock flags by name (squashfs format, "superblock flags").
fn flag_names(flags: u16) -> String {
    const NAMES: [&str; 11] = [
        "inodes-uncompressed",
        "data-uncompressed",
        "unused",
        "fragments-uncompressed",
        "no-fragments",
        "always-fragments",
        "deduplicated",
        "export-table",
        "xattrs-uncompressed",
        "no-xattrs",
        "compressor-options",
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("{flags:#06x} [{}]", names.join(","))
}

/// Which named areas differ: present in one file only, at other offsets, or with other bytes.
fn region_differences(a: &Image, a_path: &Path, b: &Image, b_path: &Path) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    // Regions are offsets in the SquashFS; in a DDI it starts at the root partition.
    let shifted = |image: &Image| -> Vec<Region> {
        let offset = filesystem_offset(image);
        image
            .regions
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.range = r.range.start + offset..r.range.end + offset;
                r
            })
            .collect()
    };
    let (a_regions, b_regions) = (shifted(a), shifted(b));
    let find = |regions: &[Region], name: &str| regions.iter().find(|r| r.name == name).cloned();
    let mut names: Vec<&str> = a_regions.iter().map(|r| r.name).collect();
    for r in &b_regions {
        if !names.contains(&r.name) {
            names.push(r.name);
        }
    }
    for name in names {
        match (find(&a_regions, name), find(&b_regions, name)) {
            (Some(x), None) => lines.push(format!("{name}: only in a (bytes {:?})", x.range)),
            (None, Some(y)) => lines.push(format!("{name}: only in b (bytes {:?})", y.range)),
            (Some(x), Some(y)) => {
                let same_len = x.range.end - x.range.start == y.range.end - y.range.start;
                let same_bytes = same_len && regions_equal(a_path, &x.range, b_path, &y.range)?;
                if !same_bytes {
                    let what = if same_len {
                        "content differs"
                    } else {
                        "length differs"
                    };
                    lines.push(format!(
                        "{name}: {what} (a bytes {:?}, b bytes {:?})",
                        x.range, y.range
                    ));
                } else if x.range != y.range {
                    lines.push(format!(
                        "{name}: same bytes at another offset (a {:?}, b {:?})",
                        x.range, y.range
                    ));
                }
            }
            (None, None) => {}
        }
    }
    Ok(lines)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len())
}

/// Where the SquashFS starts in the file: 0, or the root partition's offset in a DDI.
fn filesystem_offset(image: &Image) -> u64 {
    image.ddi.as_ref().map_or(0, |d| d.root.offset())
}

/// The format, and for DDIs what surrounds the SquashFS: root hash, salt, signature and each
/// partition's place and identity.
fn disk_image_differences(a: &Image, b: &Image) -> Vec<String> {
    let describe = |image: &Image| -> Vec<(String, String)> {
        let Some(d) = &image.ddi else {
            return vec![("format".into(), "squashfs".into())];
        };
        let mut fields = vec![
            ("format".into(), "ddi".into()),
            ("root hash".into(), hex(&d.root_hash_from_uuids())),
            ("verity salt".into(), hex(&d.superblock.salt)),
            ("disk GUID".into(), d.table.disk_guid.to_string()),
            // What the signature partition claims; diff checks no signature (verify --cert does).
            (
                "signature (unchecked)".into(),
                match &d.signature_json {
                    None => "(none)".into(),
                    Some(s) => format!(
                        "names certificate {}",
                        s.certificate_fingerprint.as_deref().unwrap_or("(none)")
                    ),
                },
            ),
        ];
        for p in &d.table.partitions {
            fields.push((
                format!("partition {}", p.name),
                format!(
                    "type {}, uuid {}, bytes {}..{}, attributes {:#x}",
                    p.type_guid,
                    p.uuid,
                    p.offset(),
                    p.offset() + p.size(),
                    p.attributes
                ),
            ));
        }
        fields
    };
    let (fa, fb) = (describe(a), describe(b));
    let mut lines = Vec::new();
    for (key, va) in &fa {
        match fb.iter().find(|(k, _)| k == key) {
            Some((_, vb)) if vb != va => lines.push(format!("{key}: {va} -> {vb}")),
            Some(_) => {}
            None => lines.push(format!("{key}: only in a ({va})")),
        }
    }
    for (key, vb) in &fb {
        if !fa.iter().any(|(k, _)| k == key) {
            lines.push(format!("{key}: only in b ({vb})"));
        }
    }
    lines
}

fn files_equal(a: &Path, b: &Path, range: std::ops::Range<u64>) -> Result<bool> {
    regions_equal(a, &range, b, &range)
}

/// Compares two equally long byte ranges of two files in chunks.
fn regions_equal(
    a: &Path,
    ra: &std::ops::Range<u64>,
    b: &Path,
    rb: &std::ops::Range<u64>,
) -> Result<bool> {
    let open = |path: &Path, start: u64| -> Result<File> {
        let mut file =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("cannot seek in {}", path.display()))?;
        Ok(file)
    };
    let (mut fa, mut fb) = (open(a, ra.start)?, open(b, rb.start)?);
    let mut left = ra.end - ra.start;
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    while left > 0 {
        let n = left.min(ba.len() as u64) as usize;
        fa.read_exact(&mut ba[..n])
            .with_context(|| format!("cannot read {}", a.display()))?;
        fb.read_exact(&mut bb[..n])
            .with_context(|| format!("cannot read {}", b.display()))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}
