//! What `sysext-assembler inspect` reports about an image, read without mounting it: the file's
//! size and SHA-256, the DDI around the SquashFS (partitions, root hash, the signature
//! partition's unchecked claims), the superblock, every entry like `unsquashfs -lls`, and the
//! extension-release fields. Built once, as text for people and as JSON for scripts, so the two
//! cannot disagree.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use super::listing::{entry_json, ls_line, utc_time};
use super::Image;
use crate::disk::gpt::{self, Guid};
use crate::feed::file_hash::sha256_file;
use crate::hex;
use crate::payload::extension_release;

/// An image read for `inspect`, with its SHA-256 and its extension-release files.
pub struct Report {
    image: Image,
    sha256: String,
    releases: Vec<Release>,
}

impl Report {
    /// Opens and checks the image at `path`, hashes it and reads its extension-release files.
    pub fn read(path: &Path) -> Result<Report> {
        let image = Image::open(path)?;
        let sha256 = sha256_file(path)?;
        let releases = extension_releases(&image)?;
        Ok(Report {
            image,
            sha256,
            releases,
        })
    }

    /// The report as lines of text, each ending in a newline.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        write_text(&mut out, &self.image, &self.sha256, &self.releases)
            .expect("writing to a String");
        out
    }

    /// The report as one JSON document.
    pub fn json(&self) -> Value {
        json(&self.image, &self.sha256, &self.releases)
    }
}

/// extension-release files live here; the one for NAME is `extension-release.NAME`.
const EXTENSION_RELEASE_DIR: &str = "usr/lib/extension-release.d/";
/// extension-release files are a few lines; anything larger is not one.
const EXTENSION_RELEASE_MAX: u64 = 64 * 1024;

/// An extension-release file's path in the image and its `KEY=VALUE` fields in key order, or
/// why they cannot be parsed (a foreign image is still listed).
type Release = (String, Result<Vec<(String, String)>, String>);

/// Every `usr/lib/extension-release.d/extension-release.*` file with its `KEY=VALUE` lines.
fn extension_releases(image: &Image) -> Result<Vec<Release>> {
    let mut found = Vec::new();
    for entry in &image.entries {
        let Some(name) = entry.path.strip_prefix(EXTENSION_RELEASE_DIR) else {
            continue;
        };
        if !name.starts_with("extension-release.") || entry.size.is_none() {
            continue;
        }
        let content = image.read_file(&entry.path, EXTENSION_RELEASE_MAX)?;
        let text = String::from_utf8_lossy(&content);
        let fields = extension_release::parse_fields(&text)
            .map(|fields| fields.into_iter().collect())
            .map_err(|err| format!("{err:#}"));
        found.push((entry.path.clone(), fields));
    }
    Ok(found)
}

/// The DDI around the SquashFS, for both outputs; `None` for a bare SquashFS.
fn disk_image_json(image: &Image) -> Value {
    let Some(d) = &image.ddi else {
        return Value::Null;
    };
    json!({
        "architecture": d.arch.to_string(),
        "disk_guid": d.table.disk_guid.to_string(),
        "root_hash": hex(&d.root_hash_from_uuids()),
        "verity": {
            "data_blocks": d.superblock.data_blocks,
            "salt": hex(&d.superblock.salt),
            "uuid": Guid(d.superblock.uuid).to_string(),
        },
        // The partition's claims, not checked here (`checked` says so; verify --cert checks).
        "signature": d.signature_json.as_ref().map(|s| json!({
            "checked": false,
            "root_hash": s.root_hash,
            "certificate_fingerprint": s.certificate_fingerprint,
        })),
        "partitions": d.table.partitions.iter().map(|p| json!({
            "name": p.name,
            "type": p.type_guid.to_string(),
            "uuid": p.uuid.to_string(),
            "offset": p.offset(),
            "size": p.size(),
            "attributes": format!("{:#x}", p.attributes),
        })).collect::<Vec<_>>(),
    })
}

fn json(image: &Image, sha256: &str, releases: &[Release]) -> Value {
    let sb = &image.superblock;
    json!({
        "image": {
            "format": if image.ddi.is_some() { "ddi" } else { "squashfs" },
            "size": file_size(image),
            "sha256": sha256,
        },
        "ddi": disk_image_json(image),
        "superblock": {
            "compression": image.compression(),
            "block_size": sb.block_size,
            "xz_filter": image.xz_filter,
            "mod_time": sb.mod_time,
            "inode_count": sb.inode_count,
            "fragment_count": sb.frag_count,
            "id_count": sb.id_count,
            "flags": format!("{:#06x}", sb.flags),
            "bytes_used": sb.bytes_used,
        },
        "root": entry_json(&image.root),
        "entries": image.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "extension_release": releases.iter().map(|(path, fields)| match fields {
            Ok(fields) => json!({
                "path": path,
                "fields": fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            }),
            Err(err) => json!({ "path": path, "error": err }),
        }).collect::<Vec<_>>(),
    })
}

/// The file's size: a DDI's table says it; a bare SquashFS is the file.
fn file_size(image: &Image) -> u64 {
    image
        .ddi
        .as_ref()
        .map_or(image.file_size, |d| d.table.disk_sectors * gpt::SECTOR)
}

fn write_text(
    out: &mut String,
    image: &Image,
    sha256: &str,
    releases: &[Release],
) -> std::fmt::Result {
    let sb = &image.superblock;
    writeln!(out, "image: {} bytes, sha256 {sha256}", file_size(image))?;
    if let Some(d) = &image.ddi {
        writeln!(
            out,
            "ddi: {}, root hash {}, {}",
            d.arch,
            hex(&d.root_hash_from_uuids()),
            match &d.signature_json {
                None => "unsigned".to_string(),
                // inspect checks no signature: the fingerprint is the partition's own claim,
                // which the PKCS#7 signature does not cover.
                Some(s) => format!(
                    "signature present, unchecked (it names certificate {}; check it with \
                     verify --cert)",
                    s.certificate_fingerprint.as_deref().unwrap_or("(none)")
                ),
            }
        )?;
        for p in &d.table.partitions {
            writeln!(
                out,
                "  partition {:<24} bytes {:>10}..{:<10} type {} uuid {}",
                p.name,
                p.offset(),
                p.offset() + p.size(),
                p.type_guid,
                p.uuid
            )?;
        }
    }
    writeln!(
        out,
        "squashfs: {} compression, xz filter {}, block size {}, {} inodes, {} fragments, created {} UTC",
        image.compression(),
        image.xz_filter,
        sb.block_size,
        sb.inode_count,
        sb.frag_count,
        utc_time(sb.mod_time)
    )?;
    writeln!(out)?;
    writeln!(out, "{}", ls_line(&image.root))?;
    for entry in &image.entries {
        writeln!(out, "{}", ls_line(entry))?;
    }
    for (path, fields) in releases {
        writeln!(out)?;
        writeln!(out, "/{path}:")?;
        match fields {
            Ok(fields) => {
                for (key, value) in fields {
                    writeln!(out, "  {key}={value}")?;
                }
            }
            Err(err) => writeln!(out, "  cannot be parsed: {err}")?,
        }
    }
    Ok(())
}
