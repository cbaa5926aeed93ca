//! Verifying a downloaded image before a machine merges it (`sysext-assembler verify`). The
//! image's sha256 is compared with its SHA256SUMS line and its manifest; then the image is read
//! (through the bounded reader, no mount) and every entry is compared with the manifest; the
//! extension-release file and the build's layout and normalisation rules are checked too. The
//! checks and their order are listed once, in `verify --help` (the command's doc comment) and
//! docs/assembler.md#verify.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::disk::ddi::{self, Ddi};
use crate::feed::file_hash::sha256_open;
use crate::feed::manifest::Manifest;
use crate::feed::sums;
use crate::image_reader::{compressor_name, EntryKind as ImageKind, Image, ImageEntry};
use crate::names::{extension_release_path, Arch};
use crate::payload::extension_release::ExtensionRelease;
use crate::payload::EntryKind;
use crate::trust::certificate::Certificate;
use crate::trust::openpgp;
use crate::trust::signing;
use crate::{base64, hex, payload};

const EXTENSION_RELEASE_MAX: u64 = 64 * 1024;

/// One check and how it went.
pub struct Check {
    pub name: &'static str,
    /// Empty when the check passed; otherwise what differs, first difference first.
    pub problems: Vec<String>,
    /// What was checked, for the report.
    pub detail: String,
}

/// The outcome of verifying one image.
pub struct Outcome {
    pub sha256: String,
    pub sums: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn verified(&self) -> bool {
        self.checks.iter().all(|c| c.problems.is_empty())
    }
}

/// Runs every check. `Err` means the check could not be made (usage or I/O); mismatches are in
/// the returned [`Outcome`].
pub fn verify(
    image: &Path,
    sums: Option<&Path>,
    manifest: Option<&Path>,
    cert: Option<&Path>,
    keyring: Option<&Path>,
) -> Result<Outcome> {
    // Opened once: every check below reads this open file, so a file put in the image's place
    // during the run is not checked in part.
    let opened_file =
        File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let meta = opened_file
        .metadata()
        .with_context(|| format!("cannot read {}", image.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", image.display());
    }
    let file_name = image
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", image.display()))?
        .to_string();
    let dir = image
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };

    let sums_path = match sums {
        Some(path) => Some(path.to_path_buf()),
        None => Some(dir.join("SHA256SUMS")).filter(|p| p.is_file()),
    };
    let manifest_path = match manifest {
        Some(path) => Some(path.to_path_buf()),
        None => file_name
            .strip_suffix(".raw")
            .map(|stem| dir.join(format!("{stem}.manifest.json")))
            .filter(|p| p.is_file()),
    };
    if sums_path.is_none() && manifest_path.is_none() {
        bail!(
            "nothing to verify {} against: give --sums SHA256SUMS and/or --manifest FILE, or put \
             SHA256SUMS or {}.manifest.json next to the image",
            image.display(),
            file_name.strip_suffix(".raw").unwrap_or(&file_name)
        );
    }
    let manifest = match &manifest_path {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the manifest {}", path.display()))?;
            Some(
                Manifest::from_json(&text)
                    .with_context(|| format!("{} is not a valid manifest", path.display()))?,
            )
        }
        None => None,
    };
    // Read once: the signature is checked over these bytes and these bytes are parsed.
    let sums_bytes = match &sums_path {
        Some(path) => {
            Some(fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let mut checks = Vec::new();
    if let Some(keyring) = keyring {
        let (Some(path), Some(bytes)) = (&sums_path, &sums_bytes) else {
            bail!(
                "--keyring checks SHA256SUMS.gpg over SHA256SUMS, and there is no SHA256SUMS: give \
                 --sums FILE (its signature FILE.gpg next to it)"
            );
        };
        checks.push(sums_signature_check(path, bytes, keyring)?);
    }
    let listed = match (&sums_path, &sums_bytes) {
        (Some(path), Some(bytes)) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{} is malformed: it is not UTF-8", path.display()))?;
            Some(sums::parse(text).with_context(|| format!("{} is malformed", path.display()))?)
        }
        _ => None,
    };

    // Hashing the whole file and reading the image are independent and each takes about one
    // pass over the file: run them side by side.
    let certificate = cert.map(signing::load_certificate).transpose()?;
    let (sha256, opened) = std::thread::scope(|scope| {
        // Positional reads: the hash does not move the offset the image reader seeks with.
        let hashing = scope.spawn(|| sha256_open(&opened_file, image));
        // Cannot duplicate the descriptor: an I/O error; cannot read as an image: a mismatch.
        let opened = opened_file
            .try_clone()
            .with_context(|| format!("cannot read {}", image.display()))
            .map(|file| Image::open_file(file, image));
        let sha256 = hashing
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing {} failed", image.display())));
        (sha256, opened)
    });
    let sha256 = sha256?;
    let opened = opened?;

    if let (Some(path), Some(listed)) = (&sums_path, &listed) {
        let mut problems = Vec::new();
        // A deployed copy may be renamed (NAME.raw); the manifest knows the published name.
        let published = manifest.as_ref().map(|m| m.image.file.clone());
        let line = listed
            .get(&file_name)
            .map(|h| (file_name.clone(), h))
            .or_else(|| published.and_then(|p| listed.get(&p).map(|h| (p, h))));
        match line {
            None => problems.push(format!("{} has no line for {file_name}", path.display())),
            Some((name, expected)) if *expected != sha256 => problems.push(format!(
                "sha256 {sha256} differs from {expected} listed for {name} in {} (published \
                 versions never change: these are not the published bytes)",
                path.display()
            )),
            Some(_) => {}
        }
        checks.push(Check {
            name: "sha256sums",
            problems,
            detail: format!("sha256 {sha256} against {}", path.display()),
        });
    }

    if let (Some(manifest), Some(path)) = (&manifest, &manifest_path) {
        let mut problems = Vec::new();
        if manifest.image.sha256 != sha256 {
            problems.push(format!(
                "sha256 {sha256} differs from the manifest's {}",
                manifest.image.sha256
            ));
        }
        if manifest.image.size != meta.len() {
            problems.push(format!(
                "size {} differs from the manifest's {}",
                meta.len(),
                manifest.image.size
            ));
        }
        checks.push(Check {
            name: "manifest-hash",
            problems,
            detail: format!("sha256 and size against {}", path.display()),
        });
    }

    // The disk image is checked on its own first: a damaged root partition may well be
    // unreadable as SquashFS, and the hash tree is what says which blocks changed.
    let mut file = opened_file;
    if ddi::looks_like_ddi(&mut file)? {
        match ddi::read(&mut file, meta.len()) {
            Ok(layout) => checks.extend(ddi_checks(
                &mut file,
                Some(&layout),
                manifest.as_ref(),
                cert.zip(certificate.as_ref()),
            )?),
            Err(err) => checks.push(Check {
                name: "dm-verity",
                problems: vec![format!("not a readable DDI: {err:#}")],
                detail: "partition table and hash tree".to_string(),
            }),
        }
    } else {
        checks.extend(ddi_checks(
            &mut file,
            None,
            manifest.as_ref(),
            cert.zip(certificate.as_ref()),
        )?);
    }

    let image_data = match opened {
        Ok(image_data) => image_data,
        Err(err) => {
            checks.push(Check {
                name: "readable",
                problems: vec![format!("the image cannot be read: {err:#}")],
                detail: "SquashFS structure".to_string(),
            });
            return Ok(Outcome {
                sha256,
                sums: sums_path,
                manifest: manifest_path,
                checks,
            });
        }
    };

    checks.push(layout_check(&image_data));
    match &manifest {
        Some(manifest) => {
            checks.push(entries_check(&image_data, manifest));
            checks.push(extension_release_check(&image_data, manifest));
        }
        None => checks.push(extension_release_check_without_manifest(
            &image_data,
            &file_name,
        )),
    }
    Ok(Outcome {
        sha256,
        sums: sums_path,
        manifest: manifest_path,
        checks,
    })
}

/// SHA256SUMS.gpg (next to SHA256SUMS) against `keyring`, over the bytes of SHA256SUMS read.
fn sums_signature_check(sums: &Path, bytes: &[u8], keyring: &Path) -> Result<Check> {
    let mut sig_name = sums.as_os_str().to_owned();
    sig_name.push(".gpg");
    let sig_path = PathBuf::from(sig_name);
    let detail = format!(
        "{} is a signature of {} by a key of {}",
        sig_path.display(),
        sums.display(),
        keyring.display()
    );
    let signature = match fs::read(&sig_path) {
        Ok(signature) => signature,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Check {
                name: "sha256sums-signature",
                problems: vec![format!(
                    "{} does not exist: the list is not signed, and systemd-sysupdate with \
                     Verify=yes refuses it",
                    sig_path.display()
                )],
                detail,
            })
        }
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", sig_path.display())),
    };
    Ok(
        match openpgp::verify_detached(bytes, &signature, keyring)? {
            Ok(fingerprint) => Check {
                name: "sha256sums-signature",
                problems: Vec::new(),
                detail: format!("{detail} (key {fingerprint}, checked by gpgv)"),
            },
            Err(why) => Check {
                name: "sha256sums-signature",
                problems: vec![format!(
                    "{} is not a good signature of {}: {why}",
                    sig_path.display(),
                    sums.display()
                )],
                detail,
            },
        },
    )
}

/// For a DDI: the hash tree recomputed from the data, the root hash against the manifest, and
/// the signature against the manifest's certificate fingerprint and, given one, the certificate.
/// For a SquashFS: only that the manifest does not expect a DDI.
fn ddi_checks(
    file: &mut File,
    layout: Option<&Ddi>,
    manifest: Option<&Manifest>,
    cert: Option<(&Path, &Certificate)>,
) -> Result<Vec<Check>> {
    let expected = manifest.and_then(|m| m.ddi.as_ref());
    let Some(layout) = layout else {
        let mut problems = Vec::new();
        if expected.is_some() {
            problems.push("the manifest describes a DDI, the image is a bare SquashFS".to_string());
        }
        if cert.is_some() {
            problems.push(
                "--cert given, but a bare SquashFS image carries no signature to check".to_string(),
            );
        }
        return Ok(vec![Check {
            name: "format",
            problems,
            detail: "SquashFS image".to_string(),
        }]);
    };

    let mut tree_problems = Vec::new();
    let root_hash = match ddi::check_tree(file, layout)? {
        Ok(hash) => Some(hex(&hash)),
        Err(problem) => {
            tree_problems.push(problem);
            None
        }
    };
    match (expected, &root_hash) {
        (None, _) if manifest.is_some() => tree_problems
            .push("the manifest describes a bare SquashFS image, the image is a DDI".to_string()),
        (Some(record), Some(hash)) if record.root_hash != *hash => tree_problems.push(format!(
            "root hash {hash} differs from the manifest's {}",
            record.root_hash
        )),
        _ => {}
    }
    let tree = Check {
        name: "dm-verity",
        problems: tree_problems,
        detail: format!(
            "hash tree over {} data blocks recomputed from the {} root partition",
            layout.superblock.data_blocks, layout.arch
        ),
    };

    let mut problems = Vec::new();
    let expected_fingerprint = expected.and_then(|r| r.certificate_fingerprint.as_deref());
    let detail = match (&layout.signature_json, cert) {
        (None, _) => {
            if let Some(fingerprint) = expected_fingerprint {
                problems.push(format!(
                    "the image is not signed; its manifest says certificate {fingerprint} signed it"
                ));
            }
            if let Some((path, _)) = cert {
                problems.push(format!(
                    "the image is not signed, so no key of {} signed it",
                    path.display()
                ));
            }
            "unsigned".to_string()
        }
        (Some(json), cert) => {
            if let Some(hash) = &root_hash {
                if json.root_hash != *hash {
                    problems.push(format!(
                        "the signature is for root hash {}, the image's is {hash}",
                        json.root_hash
                    ));
                }
            }
            let found = json.certificate_fingerprint.as_deref();
            if let Some(fingerprint) = expected_fingerprint {
                if found != Some(fingerprint) {
                    problems.push(format!(
                        "signed by certificate {}, the manifest says {fingerprint}",
                        found.unwrap_or("(none named)")
                    ));
                }
            }
            match cert {
                Some((path, certificate)) => {
                    if found.is_some_and(|f| f != certificate.fingerprint()) {
                        problems.push(format!(
                            "signed by certificate {}, not by {} ({})",
                            found.unwrap_or_default(),
                            path.display(),
                            certificate.fingerprint()
                        ));
                    }
                    match base64::decode(&json.signature) {
                        Err(err) => problems.push(format!("the signature is not base64: {err}")),
                        Ok(der) => {
                            if let Err(why) =
                                signing::verify(&json.root_hash, &der, certificate, path)?
                            {
                                problems.push(why);
                            }
                        }
                    }
                    format!("signature checked against {}", path.display())
                }
                // Nothing here covers the fingerprint: it is the partition's own claim.
                None => format!(
                    "signature present, unchecked: it names certificate {}, which only --cert \
                     FILE checks",
                    found.unwrap_or("(none)")
                ),
            }
        }
    };
    Ok(vec![
        tree,
        Check {
            name: "signature",
            problems,
            detail,
        },
    ])
}

fn manifest_kind(kind: ImageKind) -> Option<EntryKind> {
    match kind {
        ImageKind::Dir => Some(EntryKind::Dir),
        ImageKind::File => Some(EntryKind::File),
        ImageKind::Symlink => Some(EntryKind::Symlink),
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
            ImageKind::Dir => entry.mode == 0o755,
            ImageKind::File => entry.mode == 0o644 || entry.mode == 0o755,
            ImageKind::Symlink => entry.mode == 0o777,
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
    if image.root.kind != ImageKind::Dir || image.root.mode != 0o755 {
        problems.push(format!(
            "/: root is {} {:04o}, expected dir 0755",
            image.root.kind.as_str(),
            image.root.mode
        ));
    }

    let (mut i, mut j) = (0, 0);
    let (found, wanted) = (&image.entries, &manifest.entries);
    while i < found.len() || j < wanted.len() {
        let order = match (found.get(i), wanted.get(j)) {
            (Some(f), Some(w)) => f.path.as_bytes().cmp(w.path.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                problems.push(format!(
                    "/{}: in the image but not in the manifest",
                    found[i].path
                ));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                problems.push(format!(
                    "/{}: in the manifest but not in the image",
                    wanted[j].path
                ));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                compare_entry(&found[i], &wanted[j], epoch, &mut problems);
                i += 1;
                j += 1;
            }
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

fn compare_entry(
    found: &ImageEntry,
    wanted: &crate::feed::manifest::Entry,
    epoch: u32,
    problems: &mut Vec<String>,
) {
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
            if release.arch != manifest.arch {
                problems.push(format!(
                    "/{path}: ARCHITECTURE={} but the manifest says {}",
                    release.arch, manifest.arch
                ));
            }
            if release.os != manifest.os {
                problems.push(format!(
                    "/{path}: ID={} but the manifest says {}",
                    release.os, manifest.os
                ));
            }
            if release.sysext_level != manifest.sysext_level {
                problems.push(format!(
                    "/{path}: SYSEXT_LEVEL={} but the manifest says {}",
                    release.sysext_level.as_deref().unwrap_or("(unset)"),
                    manifest.sysext_level.as_deref().unwrap_or("(unset)")
                ));
            }
            if release.reload_manager != manifest.reload_manager {
                problems.push(format!(
                    "/{path}: EXTENSION_RELOAD_MANAGER is {} but the manifest says {}",
                    release.reload_manager, manifest.reload_manager
                ));
            }
            if release.restart_units != manifest.restart_units {
                problems.push(format!(
                    "/{path}: EXTENSION_RESTART_UNITS is {:?} but the manifest says {:?}",
                    release.restart_units.join(" "),
                    manifest.restart_units.join(" ")
                ));
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
