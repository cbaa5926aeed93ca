//! Verifying a downloaded image before a machine merges it (`sysext-assembler verify`). The
//! checks, their order and what each proves are listed once, in docs/verifying.md (`verify
//! --help` names them); this module runs them in that order, as named steps:
//!
//! 1. find what the image is checked against ([`References`]: SHA256SUMS and the manifest, given
//!    or found next to it through [`ImagePaths`]), and refuse to check against nothing;
//! 2. the feed's signature of SHA256SUMS, with a keyring;
//! 3. one pass over the open file hashing it while the bounded reader reads it as SquashFS;
//! 4. the sha256 against SHA256SUMS and the manifest ([`feed_checks`]);
//! 5. the disk image: hash tree and signature (`disk`), or that a bare SquashFS was expected;
//! 6. the contents: the build's rules, every entry and extension-release (`contents`).
//!
//! An `Err` means a check could not be made (usage or I/O); every mismatch is a [`Check`] with
//! problems in the [`Outcome`].

mod contents;
mod disk;
mod outcome;

pub use outcome::{Check, Outcome};

use std::fs::{self, File, Metadata};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::feed::file_hash::sha256_open;
use crate::feed::image_paths::ImagePaths;
use crate::feed::manifest::Manifest;
use crate::feed::sums::{self, SumsFile};
use crate::image_reader::Image;
use crate::trust::{openpgp, signing};

/// What the image is checked against: SHA256SUMS (read once, so that its signature and its
/// lines are of the same bytes) and the manifest, each where it was given or found.
pub struct References {
    pub sums: Option<(PathBuf, SumsFile)>,
    pub manifest: Option<(PathBuf, Manifest)>,
}

impl References {
    /// `sums` and `manifest` as given, else SHA256SUMS and `STEM.manifest.json` next to the
    /// image when they exist. At least one must be found: an image checked against nothing is
    /// not verified.
    pub fn find(paths: &ImagePaths, sums: Option<&Path>, manifest: Option<&Path>) -> Result<Self> {
        let sums_path = match sums {
            Some(path) => Some(path.to_path_buf()),
            None => Some(paths.sums()).filter(|p| p.is_file()),
        };
        let manifest_path = match manifest {
            Some(path) => Some(path.to_path_buf()),
            None => paths.manifest().filter(|p| p.is_file()),
        };
        if sums_path.is_none() && manifest_path.is_none() {
            bail!(
                "nothing to verify {} against: give --sums SHA256SUMS and/or --manifest FILE, or \
                 put SHA256SUMS or {}.manifest.json next to the image",
                paths.image.display(),
                paths.stem().unwrap_or(&paths.file_name)
            );
        }
        let manifest = match manifest_path {
            Some(path) => {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the manifest {}", path.display()))?;
                let manifest = Manifest::from_json(&text)
                    .with_context(|| format!("{} is not a valid manifest", path.display()))?;
                Some((path, manifest))
            }
            None => None,
        };
        let sums = match sums_path {
            Some(path) => {
                let file = sums::load(&path)?.with_context(|| {
                    format!("cannot read {}: it does not exist", path.display())
                })?;
                Some((path, file))
            }
            None => None,
        };
        Ok(References { sums, manifest })
    }

    fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref().map(|(_, manifest)| manifest)
    }
}

/// Runs every check on `image`. `Err` means the check could not be made (usage or I/O);
/// mismatches are in the returned [`Outcome`].
pub fn verify(
    image: &Path,
    sums: Option<&Path>,
    manifest: Option<&Path>,
    cert: Option<&Path>,
    keyring: Option<&Path>,
) -> Result<Outcome> {
    let paths = ImagePaths::of(image)?;
    // Opened once: every check below reads this open file, so a file put in the image's place
    // during the run is not checked in part.
    let (mut file, meta) = open_regular_file(image)?;
    let references = References::find(&paths, sums, manifest)?;
    let certificate = cert.map(signing::load_certificate).transpose()?;

    let mut checks = Vec::new();
    if let Some(keyring) = keyring {
        let Some((path, sums)) = &references.sums else {
            bail!(
                "--keyring checks SHA256SUMS.gpg over SHA256SUMS, and there is no SHA256SUMS: give \
                 --sums FILE (its signature FILE.gpg next to it)"
            );
        };
        checks.push(sums_signature_check(path, &sums.bytes, keyring)?);
    }
    let (sha256, read) = hash_and_read(&file, image)?;
    checks.extend(feed_checks(&paths, &references, &sha256, meta.len()));
    // The disk image is checked on its own first: a damaged root partition may well be
    // unreadable as SquashFS, and the hash tree is what says which blocks changed.
    checks.extend(disk::checks(
        &mut file,
        meta.len(),
        references.manifest(),
        cert.zip(certificate.as_ref()),
    )?);
    match read {
        Ok(contents) => checks.extend(contents::checks(
            &contents,
            references.manifest(),
            &paths.file_name,
        )),
        Err(err) => checks.push(Check {
            name: "readable",
            problems: vec![format!("the image cannot be read: {err:#}")],
            detail: "SquashFS structure".to_string(),
        }),
    }
    Ok(Outcome {
        sha256,
        sums: references.sums.map(|(path, _)| path),
        manifest: references.manifest.map(|(path, _)| path),
        checks,
    })
}

fn open_regular_file(image: &Path) -> Result<(File, Metadata)> {
    let file = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", image.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", image.display());
    }
    Ok((file, meta))
}

/// The file's sha256 and the file read as an image, side by side: each takes about one pass over
/// the file. The outer `Err` is an I/O error; the inner one an image that cannot be read, which
/// is a mismatch.
fn hash_and_read(file: &File, image: &Path) -> Result<(String, Result<Image>)> {
    // Cannot duplicate the descriptor: an I/O error.
    let duplicate = file
        .try_clone()
        .with_context(|| format!("cannot read {}", image.display()))?;
    std::thread::scope(|scope| {
        // Positional reads: the hash does not move the offset the image reader seeks with.
        let hashing = scope.spawn(|| sha256_open(file, image));
        let read = Image::open_file(duplicate, image);
        let sha256 = hashing
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing {} failed", image.display())))?;
        Ok((sha256, read))
    })
}

/// The sha256 against the image's line in SHA256SUMS and against the manifest (and the size).
fn feed_checks(paths: &ImagePaths, references: &References, sha256: &str, size: u64) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some((path, sums)) = &references.sums {
        let file_name = &paths.file_name;
        let listed = &sums.sums;
        let mut problems = Vec::new();
        // A deployed copy may be renamed (NAME.raw); the manifest knows the published name.
        let published = references.manifest().map(|m| m.image.file.clone());
        let line = listed
            .get(file_name)
            .map(|h| (file_name.clone(), h))
            .or_else(|| published.and_then(|p| listed.get(&p).map(|h| (p, h))));
        match line {
            None => problems.push(format!("{} has no line for {file_name}", path.display())),
            Some((name, expected)) if expected != sha256 => problems.push(format!(
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
    if let Some((path, manifest)) = &references.manifest {
        let mut problems = Vec::new();
        if manifest.image.sha256 != sha256 {
            problems.push(format!(
                "sha256 {sha256} differs from the manifest's {}",
                manifest.image.sha256
            ));
        }
        if manifest.image.size != size {
            problems.push(format!(
                "size {size} differs from the manifest's {}",
                manifest.image.size
            ));
        }
        checks.push(Check {
            name: "manifest-hash",
            problems,
            detail: format!("sha256 and size against {}", path.display()),
        });
    }
    checks
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
