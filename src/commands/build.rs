//! `sysext-assembler build`: payload in, image + manifest + SHA256SUMS (+ sysupdate transfer)
//! out. This module only wires the library together; the rules live in `payload`, `names`,
//! `payload::extension_release`, the bytes in `squashfs` and `disk`, the feed and its crash
//! safety in `feed`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use sysext_assembler::disk::ddi::{self, ImageFormat};
use sysext_assembler::feed::manifest::{self, BuildSettings, DdiRecord, ImageFile, Manifest};
use sysext_assembler::feed::output::OutputDir;
use sysext_assembler::feed::{file_hash, published, sums, sysupdate};
use sysext_assembler::hex;
use sysext_assembler::names::{self, Arch};
use sysext_assembler::payload::extension_release::ExtensionRelease;
use sysext_assembler::payload::Payload;
use sysext_assembler::squashfs::compress::{Compression, XzFilter};
use sysext_assembler::squashfs::writer::{self, ImageOptions};

const EXAMPLE: &str = "\
Example:
  sysext-assembler build --name keepalived --version 2.3.4 --arch x86-64 --out out/ \\
      --tree files/ --file usr/bin/keepalived=result/bin/keepalived \\
      --os flatcar --reload-manager --update-url https://example.org/keepalived/

  writes out/keepalived-v2.3.4-x86-64.raw, out/keepalived-v2.3.4-x86-64.manifest.json,
  out/keepalived.conf and merges the image's line into out/SHA256SUMS.";

/// Build a bit-reproducible systemd-sysext image from a payload.
///
/// The image's bytes depend only on the payload's relative paths, file contents, executable
/// bits and symlink targets, and on the options: never on owners, mtimes, umask, locale, time
/// zone, the number of cores or where the inputs live.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLE, disable_version_flag = true)]
pub struct Args {
    /// Extension name: the image is deployed as NAME.raw ([A-Za-z0-9._+-]).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Version; file names get exactly one leading `v` ([A-Za-z0-9._+-]).
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Architecture, as systemd names it (the aliases x86_64, amd64 and aarch64 are read too).
    #[arg(long, value_name = "ARCH")]
    pub arch: Arch,
    /// Output directory (created if missing); may already hold other versions and arches.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A payload tree holding usr/ and/or opt/, merged in order; repeatable.
    #[arg(long = "tree", value_name = "DIR")]
    pub trees: Vec<PathBuf>,
    /// Put the file SRC at DEST inside the image (e.g. usr/bin/keepalived=./keepalived);
    /// mode 0755 if SRC is executable, else 0644; repeatable.
    #[arg(long = "file", value_name = "DEST=SRC")]
    pub files: Vec<String>,
    /// extension-release ID= the host's os-release must match [default: _any].
    #[arg(long, value_name = "ID")]
    pub os: Option<String>,
    /// extension-release SYSEXT_LEVEL= (only with --os) [default: 1.0].
    #[arg(long, value_name = "LEVEL")]
    pub sysext_level: Option<String>,
    /// Set EXTENSION_RELOAD_MANAGER=1 so systemd reloads units when the image is merged.
    #[arg(long)]
    pub reload_manager: bool,
    /// List UNIT in EXTENSION_RESTART_UNITS=: systemd 262 and later restart it after merging or
    /// refreshing the image and stop it on unmerge; repeatable.
    #[arg(long = "restart-unit", value_name = "UNIT")]
    pub restart_units: Vec<String>,
    /// Timestamp of every entry and of the superblock, in seconds since 1970
    /// [default: $SOURCE_DATE_EPOCH, else 0].
    #[arg(long, value_name = "N")]
    pub epoch: Option<u32>,
    /// SquashFS compressor.
    #[arg(long, default_value_t)]
    pub compression: Compression,
    /// Data block size in bytes, or with a K or M suffix: a power of two from 4K to 1M. Larger
    /// blocks compress better (the xz dictionary is the block size: 1M makes the arm64
    /// keepalived image 4.7 % smaller than 128K, BENCHMARKS.md); reading any byte decompresses its
    /// whole block, which costs nothing for a sysext whose files are read whole at start.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_block_size)]
    pub block_size: u32,
    /// With xz: a BCJ filter for machine code, tried on every data block and kept where it makes
    /// the block smaller (as mksquashfs -Xbcj); 8 % smaller for the arm64 keepalived. Default:
    /// x86 for x86-64 images (every kernel decodes it); none for arm64 images, because the
    /// kernel decodes arm64 only from Linux 6.12 on (Flatcar LTS 4081 runs 6.6): pass arm64 for
    /// hosts that all run 6.12 or later.
    #[arg(long)]
    pub xz_filter: Option<XzFilter>,
    /// Image format: a bare SquashFS, or a Discoverable Disk Image (GPT: the SquashFS as root
    /// partition, its dm-verity hash tree and, after `sign`, a signature partition), which
    /// systemd-sysext mounts through dm-verity so the kernel checks every block it reads.
    #[arg(long, default_value_t)]
    pub format: ImageFormat,
    /// Also write NAME.conf, a systemd-sysupdate transfer file for a feed at URL.
    #[arg(long, value_name = "URL")]
    pub update_url: Option<String>,
    /// Record KEY=VALUE in the manifest (source hash, revision, ...); repeatable.
    #[arg(long = "provenance", value_name = "KEY=VALUE")]
    pub provenance: Vec<String>,
    /// Overwrite an image or manifest that DIR already publishes under the same name with
    /// different bytes. Without it such a build is refused: published versions are immutable.
    /// Nodes that already verified the old bytes keep them, but any re-download of that version
    /// (a new node, a repair) gets the new bytes under the old name; a node holding the old
    /// SHA256SUMS fails to verify it. Prefer a new --version.
    #[arg(long)]
    pub replace_published: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let written = build(args)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Does the build; returns the paths written, SHA256SUMS last.
pub fn build(args: &Args) -> Result<Vec<PathBuf>> {
    names::validate_name(&args.name)?;
    names::validate_version(&args.version)?;
    let release = ExtensionRelease::new(
        args.os.as_deref(),
        args.sysext_level.as_deref(),
        args.arch,
        args.reload_manager,
        args.restart_units.clone(),
    )?;
    let epoch = match args.epoch {
        Some(epoch) => epoch,
        None => epoch_from_env()?,
    };
    let transfer = match &args.update_url {
        Some(url) => Some(sysupdate::render_transfer(&args.name, url)?),
        None => None,
    };
    let provenance = manifest::parse_provenance(&args.provenance)?;

    let payload = collect_payload(args, &release)?;

    let xz_filter = xz_filter(args)?;
    let options = ImageOptions {
        compression: args.compression,
        block_size: args.block_size,
        xz_filter,
        epoch,
    };
    let image_name = names::image_file_name(&args.name, &args.version, args.arch);
    let mut out = OutputDir::open(&args.out)?;
    // Read under the directory lock, and before the (long) image write: a malformed SHA256SUMS
    // fails the build at once.
    let sums_path = out.path().join("SHA256SUMS");
    let mut all_sums = sums::load(&sums_path)
        .with_context(|| format!("cannot merge into {}", sums_path.display()))?
        .map_or_else(sums::Sums::new, |file| file.sums);
    let image_index = out.stage(&image_name)?;
    let (size, ddi) = write_image(&mut out, image_index, &payload, options, args)?;
    let (sha256, sha512) = file_hash::sha256_and_sha512(out.temp_path(image_index))?;
    published::check(
        out.path(),
        &all_sums,
        &image_name,
        &sha256,
        args.replace_published,
    )?;

    let image = ImageFile {
        file: image_name.clone(),
        size,
        sha256: sha256.clone(),
        sha512,
    };
    let settings = BuildSettings {
        name: &args.name,
        version: &args.version,
        release: &release,
        options,
        provenance,
    };
    let manifest = Manifest::of_build(settings, &payload, image, ddi);
    let manifest_name = names::manifest_file_name(&args.name, &args.version, args.arch);
    let manifest_json = manifest.to_json();
    published::check(
        out.path(),
        &all_sums,
        &manifest_name,
        &hex(&Sha256::digest(manifest_json.as_bytes())),
        args.replace_published,
    )?;
    out.stage_bytes(&manifest_name, manifest_json.as_bytes())?;
    if let Some(transfer) = transfer {
        out.stage_bytes(&names::transfer_file_name(&args.name), transfer.as_bytes())?;
    }

    sums::merge(&mut all_sums, &image_name, &sha256);
    out.stage_bytes("SHA256SUMS", sums::render(&all_sums).as_bytes())?;
    out.commit()
}

/// The payload: the trees and files given, and the extension-release file built from `release`.
fn collect_payload(args: &Args, release: &ExtensionRelease) -> Result<Payload> {
    if args.trees.is_empty() && args.files.is_empty() {
        bail!("no payload: give at least one --tree DIR or --file DEST=SRC");
    }
    let mut payload = Payload::new();
    for tree in &args.trees {
        payload.add_tree(tree)?;
    }
    for spec in &args.files {
        let Some((dest, source)) = spec.split_once('=') else {
            bail!("--file {spec:?}: expected DEST=SRC, e.g. usr/bin/keepalived=./keepalived");
        };
        payload.add_file(dest, Path::new(source))?;
    }
    payload.add_generated_file(
        &names::extension_release_path(&args.name),
        release.render().into_bytes(),
        "sysext-assembler writes it from --os, --sysext-level, --arch and --reload-manager",
    )?;
    Ok(payload)
}

/// The xz filter: as given (with xz only), else the default for the architecture.
fn xz_filter(args: &Args) -> Result<XzFilter> {
    Ok(match (args.xz_filter, args.compression) {
        (Some(filter), Compression::Xz) => filter,
        (None, Compression::Xz) => XzFilter::default_for(args.arch),
        (Some(XzFilter::None) | None, _) => XzFilter::None,
        (Some(filter), other) => bail!(
            "--xz-filter {filter} needs --compression xz (it is an xz filter; {other} has none)"
        ),
    })
}

/// Writes the image into the staged output `index`, as a bare SquashFS or as a DDI around it;
/// returns its size and, for a DDI, the manifest's record of its hash tree.
fn write_image(
    out: &mut OutputDir,
    index: usize,
    payload: &Payload,
    options: ImageOptions,
    args: &Args,
) -> Result<(u64, Option<DdiRecord>)> {
    Ok(match args.format {
        ImageFormat::Squashfs => (
            writer::write_image(payload, options, out.file(index))?,
            None,
        ),
        ImageFormat::Ddi => {
            let mut filesystem = tempfile::tempfile_in(out.path()).with_context(|| {
                format!("cannot create a temporary file in {}", out.path().display())
            })?;
            let len = writer::write_image(payload, options, &mut filesystem)?;
            let written = ddi::write_unsigned(out.file(index), args.arch, &mut filesystem, len)?;
            let record = DdiRecord {
                root_hash: hex(&written.root_hash),
                salt: hex(&written.salt),
                certificate_fingerprint: None,
            };
            (written.size, Some(record))
        }
    })
}

/// `--block-size`: bytes, or a number with a K or M suffix (binary units).
fn parse_block_size(text: &str) -> Result<u32> {
    let (digits, unit) = match text.strip_suffix(['K', 'k']) {
        Some(digits) => (digits, 1024),
        None => match text.strip_suffix(['M', 'm']) {
            Some(digits) => (digits, 1024 * 1024),
            None => (text, 1),
        },
    };
    let size = digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| n.is_power_of_two() && (4096..=1 << 20).contains(n));
    size.with_context(|| {
        format!("block size {text:?}: use a power of two from 4K to 1M, e.g. 128K or 1M")
    })
}

/// `$SOURCE_DATE_EPOCH` (reproducible-builds.org), else 0. A malformed value is an error rather
/// than a silent fallback, so a broken build environment is noticed.
fn epoch_from_env() -> Result<u32> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.parse().with_context(|| {
            format!(
                "SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds between 0 and \
                 4294967295; fix it or pass --epoch"
            )
        }),
        Err(std::env::VarError::NotPresent) => Ok(0),
        Err(std::env::VarError::NotUnicode(value)) => {
            bail!("SOURCE_DATE_EPOCH={value:?} is not a number; fix it or pass --epoch")
        }
    }
}
