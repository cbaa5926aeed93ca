//! The checks of what the image holds, read through the bounded reader: the build's layout and
//! normalisation rules (`layout`), every entry against the manifest (`entries`) and the
//! extension-release file (`extension-release`), against the manifest or, without one, the
//! image's file name.

use anyhow::{Context, Result};
use itertools::{merge_join_by, EitherOrBoth};

use super::outcome::Check;
use crate::feed::manifest::{Entry, Manifest};
use crate::image_reader::{compressor_name, FileType, Image, ImageEntry};
use crate::names::{extension_release_path, Arch};
use crate::payload::extension_release::ExtensionRelease;
use crate::payload::{self, EntryKind};

const EXTENSION_RELEASE_MAX: u64 = 64 * 1024;

/// `layout`, then with a manifest `entries` and `extension-release`, without one
/// `extension-release` against the file name `file_name`.
pub(super) fn checks(image: &Image, manifest: Option<&Manifest>, file_name: &str) -> Vec<Check> {
    let mut checks = vec![layout_check(image)];
    match manifest {
        Some(manifest) => {
            checks.push(entries_check(image, manifest));
            checks.push(extension_release_check(image, manifest));
        }
        None => checks.push(extension_release_check_without_manifest(image, file_name)),
    }
    checks
}

fn manifest_kind(kind: FileType) -> Option<EntryKind> {
    match kind {
        FileType::Dir => Some(EntryKind::Dir),
        FileType::File => Some(EntryKind::File),
        FileType::Symlink => Some(EntryKind::Symlink),
        _ => None,
    }
}

/// The build's rules, which hold for every image it writes, manifest or not: layout (only usr/
/// and opt/, no usr/sbin, no special files or bits, symlinks stay inside) and normalisation
/// (owner 0:0, one mtime equal to the superblock's, fixed modes, no xattrs).
fn layout_check(image: &Image) -> Check {
    let mut problems = Vec::new();
    let epoch = image.superblock.mod_time;
    let mut all = vec![&image.root];
    all.extend(image.entries.iter());
    for entry in all {
        let shown = format!("/{}", entry.path);
        match manifest_kind(entry.kind) {
            None => {
                problems.push(payload::special_file_error(&shown, entry.kind.as_str()).to_string())
            }
            Some(kind) if !entry.path.is_empty() => {
                if let Err(err) = payload::check_entry(
                    &entry.path,
                    kind,
                    u32::from(entry.mode),
                    entry.target.as_deref(),
                ) {
                    problems.push(err.to_string());
                }
            }
            Some(_) => {}
        }
        if (entry.uid, entry.gid) != (0, 0) {
            problems.push(format!(
                "{shown}: owner {}:{}, expected 0:0",
                entry.uid, entry.gid
            ));
        }
        if entry.mtime != epoch {
            problems.push(format!(
                "{shown}: mtime {} differs from the image's time {epoch}",
                entry.mtime
            ));
        }
        let mode_ok = match entry.kind {
            FileType::Dir => entry.mode == 0o755,
            FileType::File => entry.mode == 0o644 || entry.mode == 0o755,
            FileType::Symlink => entry.mode == 0o777,
            _ => true,
        };
        if !mode_ok {
            problems.push(format!(
                "{shown}: mode {:04o} is not what the build writes (directories 0755, files 0644 or 0755, symlinks 0777)",
                entry.mode
            ));
        }
    }
    if image.superblock.xattr_table != u64::MAX {
        problems.push("the image carries extended attributes; the build writes none".to_string());
    }
    Check {
        name: "layout",
        problems,
        detail: format!(
            "layout and normalisation rules on {} entries",
            image.entries.len() + 1
        ),
    }
}

/// Every entry against the manifest, in path order, nothing extra or missing; root directory,
/// superblock time, compressor and block size too.
fn entries_check(image: &Image, manifest: &Manifest) -> Check {
    let mut problems = Vec::new();
    let epoch = manifest.epoch;
    if image.superblock.mod_time != epoch {
        problems.push(format!(
            "superblock time {} differs from the manifest's epoch {epoch}",
            image.superblock.mod_time
        ));
    }
    if image.compression() != manifest.compression.to_string() {
        problems.push(format!(
            "compression {} differs from the manifest's {}",
            compressor_name(image.superblock.compressor),
            manifest.compression
        ));
    }
    if image.superblock.block_size != manifest.block_size {
        problems.push(format!(
            "block size {} differs from the manifest's {}",
            image.superblock.block_size, manifest.block_size
        ));
    }
    if image.xz_filter != manifest.xz_filter.to_string() {
        problems.push(format!(
            "xz filter {} differs from the manifest's {}",
            image.xz_filter, manifest.xz_filter
        ));
    }
    check_owner_time(&image.root, epoch, &mut problems);
    if image.root.kind != FileType::Dir || image.root.mode != 0o755 {
        problems.push(format!(
            "/: root is {} {:04o}, expected dir 0755",
            image.root.kind.as_str(),
            image.root.mode
        ));
    }

    let by_path = |f: &&ImageEntry, w: &&Entry| f.path.as_bytes().cmp(w.path.as_bytes());
    for pair in merge_join_by(&image.entries, &manifest.entries, by_path) {
        match pair {
            EitherOrBoth::Left(found) => problems.push(format!(
                "/{}: in the image but not in the manifest",
                found.path
            )),
            EitherOrBoth::Right(wanted) => problems.push(format!(
                "/{}: in the manifest but not in the image",
                wanted.path
            )),
            EitherOrBoth::Both(found, wanted) => compare_entry(found, wanted, epoch, &mut problems),
        }
    }
    Check {
        name: "entries",
        problems,
        detail: format!(
            "{} entries against the manifest (type, mode, owner 0:0, mtime {epoch}, size, sha256, target)",
            manifest.entries.len()
        ),
    }
}

fn check_owner_time(entry: &ImageEntry, epoch: u32, problems: &mut Vec<String>) {
    if (entry.uid, entry.gid) != (0, 0) {
        problems.push(format!(
            "/{}: owner {}:{}, expected 0:0",
            entry.path, entry.uid, entry.gid
        ));
    }
    if entry.mtime != epoch {
        problems.push(format!(
            "/{}: mtime {} differs from the manifest's epoch {epoch}",
            entry.path, entry.mtime
        ));
    }
}

fn compare_entry(found: &ImageEntry, wanted: &Entry, epoch: u32, problems: &mut Vec<String>) {
    let path = &found.path;
    match manifest_kind(found.kind) {
        Some(kind) if kind == wanted.kind => {}
        _ => {
            problems.push(format!(
                "/{path}: is a {}, the manifest says {:?}",
                found.kind.as_str(),
                wanted.kind
            ));
            return;
        }
    }
    let mode = format!("{:04o}", found.mode);
    if mode != wanted.mode {
        problems.push(format!(
            "/{path}: mode {mode} differs from the manifest's {}",
            wanted.mode
        ));
    }
    check_owner_time(found, epoch, problems);
    if found.size != wanted.size {
        problems.push(format!(
            "/{path}: size {} differs from the manifest's {}",
            found.size.map_or("none".into(), |s| s.to_string()),
            wanted.size.map_or("none".into(), |s| s.to_string())
        ));
    }
    if found.sha256 != wanted.sha256 {
        problems.push(format!(
            "/{path}: content sha256 {} differs from the manifest's {}",
            found.sha256.as_deref().unwrap_or("none"),
            wanted.sha256.as_deref().unwrap_or("none")
        ));
    }
    if found.target != wanted.target {
        problems.push(format!(
            "/{path}: symlink target {:?} differs from the manifest's {:?}",
            found.target.as_deref().unwrap_or(""),
            wanted.target.as_deref().unwrap_or("")
        ));
    }
}

fn read_release(image: &Image, path: &str) -> Result<ExtensionRelease> {
    let content = image.read_file(path, EXTENSION_RELEASE_MAX)?;
    let text = String::from_utf8(content).context("it is not UTF-8")?;
    ExtensionRelease::parse(&text)
}

fn extension_release_check(image: &Image, manifest: &Manifest) -> Check {
    let path = extension_release_path(&manifest.name);
    let mut problems = Vec::new();
    match read_release(image, &path) {
        Err(err) => problems.push(format!("/{path}: {err:#}")),
        Ok(release) => {
            let mut differs = |found: String, wanted: String| {
                problems.push(format!("/{path}: {found} but the manifest says {wanted}"));
            };
            let unset = |level: &Option<String>| level.as_deref().unwrap_or("(unset)").to_string();
            if release.arch != manifest.arch {
                differs(
                    format!("ARCHITECTURE={}", release.arch),
                    manifest.arch.to_string(),
                );
            }
            if release.os != manifest.os {
                differs(format!("ID={}", release.os), manifest.os.clone());
            }
            if release.sysext_level != manifest.sysext_level {
                differs(
                    format!("SYSEXT_LEVEL={}", unset(&release.sysext_level)),
                    unset(&manifest.sysext_level),
                );
            }
            if release.reload_manager != manifest.reload_manager {
                differs(
                    format!("EXTENSION_RELOAD_MANAGER is {}", release.reload_manager),
                    manifest.reload_manager.to_string(),
                );
            }
            if release.restart_units != manifest.restart_units {
                differs(
                    format!(
                        "EXTENSION_RESTART_UNITS is {:?}",
                        release.restart_units.join(" ")
                    ),
                    format!("{:?}", manifest.restart_units.join(" ")),
                );
            }
        }
    }
    let others: Vec<&str> = release_files(image).filter(|p| *p != path).collect();
    if !others.is_empty() {
        problems.push(format!(
            "other extension-release files present: /{}",
            others.join(", /")
        ));
    }
    Check {
        name: "extension-release",
        problems,
        detail: format!("/{path} names {} for {}", manifest.name, manifest.arch),
    }
}

fn release_files(image: &Image) -> impl Iterator<Item = &str> {
    image
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .filter(|p| p.starts_with("usr/lib/extension-release.d/extension-release."))
}

/// Without a manifest the name and architecture come from the file name: the image must hold
/// exactly one extension-release file, for a NAME the file name starts with (`NAME.raw` or
/// `NAME-v...`), and when the file name ends in `-ARCH.raw` that architecture must match.
fn extension_release_check_without_manifest(image: &Image, file_name: &str) -> Check {
    let mut problems = Vec::new();
    let files: Vec<&str> = release_files(image).collect();
    let mut detail = "exactly one extension-release file".to_string();
    match files.as_slice() {
        [] => {
            problems.push("no usr/lib/extension-release.d/extension-release.NAME file".to_string())
        }
        [path] => {
            let name = path
                .rsplit_once("extension-release.")
                .map_or("", |(_, n)| n);
            detail = format!("/{path} for the file name {file_name}");
            if file_name != format!("{name}.raw") && !file_name.starts_with(&format!("{name}-")) {
                problems.push(format!(
                    "/{path} names the extension {name:?}, but the file is called {file_name}"
                ));
            }
            match read_release(image, path) {
                Err(err) => problems.push(format!("/{path}: {err:#}")),
                Ok(release) => {
                    let stem = file_name.strip_suffix(".raw").unwrap_or(file_name);
                    let arch_in_name = [Arch::X86_64, Arch::Arm64]
                        .into_iter()
                        .find(|arch| stem.ends_with(&format!("-{arch}")));
                    if let Some(arch) = arch_in_name {
                        if arch != release.arch {
                            problems.push(format!(
                                "/{path}: ARCHITECTURE={} but the file name says {arch}",
                                release.arch
                            ));
                        }
                    }
                }
            }
        }
        many => problems.push(format!(
            "{} extension-release files (/{}); an image carries one",
            many.len(),
            many.join(", /")
        )),
    }
    Check {
        name: "extension-release",
        problems,
        detail,
    }
}
