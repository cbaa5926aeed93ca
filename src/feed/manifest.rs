//! The JSON manifest written next to every image. It is the contract between `build`, which
//! writes it, and `verify`, `butane` and downstream users, who read it: it records what the image
//! must contain, entry by entry, so an image fetched from anywhere can be checked without trusting
//! whoever served it.
//!
//! Owner and mtime are not stored per entry: the build normalises every entry to uid 0, gid 0
//! and mtime = `epoch`, and `verify` checks exactly that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use anyhow::{bail, Result};

use crate::hex;
use crate::names::Arch;
use crate::payload::extension_release::ExtensionRelease;
use crate::payload::{EntryKind, Node, Payload};
use crate::squashfs::compress::{Compression, XzFilter};
use crate::squashfs::writer::ImageOptions;

/// Bumped whenever a field changes meaning or a required field is added.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole manifest, `NAME-vVERSION-ARCH.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`SCHEMA_VERSION`] for manifests this tool writes.
    pub schema: u32,
    /// Extension name: the image is deployed as `NAME.raw` and carries
    /// `usr/lib/extension-release.d/extension-release.NAME`.
    pub name: String,
    /// Version as given to `build`, without a leading `v` added.
    pub version: String,
    /// systemd's architecture name.
    #[serde(with = "crate::names::choice")]
    pub arch: Arch,
    /// `ID=` in extension-release (`_any` when the image is not tied to one OS).
    pub os: String,
    /// `SYSEXT_LEVEL=`; absent when `os` is `_any`.
    pub sysext_level: Option<String>,
    /// Whether extension-release sets `EXTENSION_RELOAD_MANAGER=1`.
    pub reload_manager: bool,
    /// `EXTENSION_RESTART_UNITS=` of extension-release, in order; absent when there are none (so
    /// manifests of images without it keep their bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_units: Vec<String>,
    /// SquashFS compressor.
    #[serde(with = "crate::names::choice")]
    pub compression: Compression,
    /// SquashFS data block size in bytes.
    pub block_size: u32,
    /// The xz BCJ filter tried on every data block (always `none` for zstd and gzip). Manifests
    /// written before the option existed lack it: `none`.
    #[serde(default = "no_xz_filter", with = "crate::names::choice")]
    pub xz_filter: XzFilter,
    /// Seconds since 1970: every mtime in the image and the superblock time.
    pub epoch: u32,
    /// The tool that wrote the image.
    pub tool: Tool,
    /// The image file itself.
    pub image: ImageFile,
    /// DDIs only (`build --format ddi`): the dm-verity root hash and salt, and once signed the
    /// signing certificate's fingerprint. Absent for a bare SquashFS image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddi: Option<DdiRecord>,
    /// Every entry of the image except the root directory, sorted by path in byte order.
    pub entries: Vec<Entry>,
    /// Free-form `--provenance KEY=VALUE` pairs (source hash, nixpkgs revision, ...).
    pub provenance: BTreeMap<String, String>,
}

/// What `build` was asked to make, as its manifest records it: known before the image is
/// written.
pub struct BuildSettings<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub release: &'a ExtensionRelease,
    pub options: ImageOptions,
    pub provenance: BTreeMap<String, String>,
}

impl Manifest {
    /// The manifest of an image `build` wrote from `payload` with `settings`: `image` is the
    /// written file, `ddi` its hash tree when it is a DDI.
    pub fn of_build(
        settings: BuildSettings<'_>,
        payload: &Payload,
        image: ImageFile,
        ddi: Option<DdiRecord>,
    ) -> Manifest {
        let BuildSettings {
            name,
            version,
            release,
            options,
            provenance,
        } = settings;
        Manifest {
            schema: SCHEMA_VERSION,
            name: name.to_string(),
            version: version.to_string(),
            arch: release.arch,
            os: release.os.clone(),
            sysext_level: release.sysext_level.clone(),
            reload_manager: release.reload_manager,
            restart_units: release.restart_units.clone(),
            compression: options.compression,
            block_size: options.block_size,
            xz_filter: options.xz_filter,
            epoch: options.epoch,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            image,
            ddi,
            entries: entries_of(payload),
            provenance,
        }
    }
}

/// `--provenance KEY=VALUE` pairs: keys of [A-Za-z0-9._-], each given once.
pub fn parse_provenance(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut provenance = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--provenance {pair:?}: expected KEY=VALUE, e.g. source.sha256=<hex>");
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bail!("--provenance {pair:?}: the key must be non-empty and made of [A-Za-z0-9._-]");
        }
        if provenance
            .insert(key.to_string(), value.to_string())
            .is_some()
        {
            bail!("--provenance: the key {key:?} is given twice");
        }
    }
    Ok(provenance)
}

fn no_xz_filter() -> XzFilter {
    XzFilter::None
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// File name only, e.g. `keepalived-v2.3.4-x86-64.raw`.
    pub file: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex.
    pub sha512: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdiRecord {
    /// Lowercase hex: what systemd checks the signature against and the kernel every block.
    pub root_hash: String,
    /// Lowercase hex.
    pub salt: String,
    /// SHA-256 of the signing certificate (DER), lowercase hex, as in the signature partition;
    /// absent until `sign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_fingerprint: Option<String>,
}

/// One entry of the image. `path` is relative to the image root, `/`-separated, no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits as four octal digits: `0755` for directories and executables, `0644`
    /// for other files, `0777` for symlinks.
    pub mode: String,
    /// Files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Files only, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Manifest entries, in the payload's byte order of paths.
pub fn entries_of(payload: &Payload) -> Vec<Entry> {
    payload
        .entries()
        .map(|(path, node)| {
            let (mode, size, sha256, target) = match node {
                Node::Dir => (0o755, None, None, None),
                Node::File(file) => (
                    file.mode(),
                    Some(file.contents.len() as u64),
                    Some(hex(&file.sha256)),
                    None,
                ),
                Node::Symlink(target) => (0o777, None, None, Some(target.clone())),
            };
            Entry {
                path: path.to_string(),
                kind: node.kind(),
                mode: format!("{mode:04o}"),
                size,
                sha256,
                target,
            }
        })
        .collect()
}

impl Manifest {
    /// Pretty JSON with a trailing newline; field order is fixed by the struct, so the same
    /// build writes the same bytes.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest serialises");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let manifest: Manifest = serde_json::from_str(text)?;
        anyhow::ensure!(
            manifest.schema == SCHEMA_VERSION,
            "manifest schema {} is not supported (this tool reads schema {SCHEMA_VERSION}); \
             use a sysext-assembler release that matches the one that built the image",
            manifest.schema
        );
        Ok(manifest)
    }
}
