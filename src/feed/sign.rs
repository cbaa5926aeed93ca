//! `sign` as the feed sees it: a DDI that `build --format ddi` published gets its signature
//! partition, and its manifest and `SHA256SUMS` line are rewritten for the signed bytes, all
//! three replaced atomically under the output directory's lock. The signature itself (what is
//! signed, with which key, checked how) is [`crate::trust::signing`]'s.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::disk::ddi::SignatureJson;
use crate::feed::image_paths::ImagePaths;
use crate::feed::manifest::Manifest;
use crate::feed::output::OutputDir;
use crate::feed::{file_hash, sums};
use crate::trust::signing::{signature_partition, SoundDdi};

/// Signs the DDI at `image` with `key`, whose certificate is `cert`; returns the paths written
/// (none when the image was already signed with this key and its manifest and SHA256SUMS line
/// already describe it).
///
/// The output directory is locked before the image is read and stays locked until the new
/// files are in place, so two runs cannot both find the image unsigned. Image, manifest and
/// SHA256SUMS are renamed in that order; a run interrupted between two renames leaves a signed
/// image whose manifest or SHA256SUMS line still describes the unsigned one, and running `sign`
/// again with the same key completes them (the image itself is then left as it is).
pub fn sign(image: &Path, key: &Path, cert: &Path) -> Result<Vec<PathBuf>> {
    let paths = ImagePaths::of(image)?;
    let manifest_path = manifest_path_of(&paths)?;
    let mut out = OutputDir::open(&paths.dir)?;
    let (manifest_text, mut manifest) = read_manifest(&manifest_path)?;

    let ddi = SoundDdi::open(image)?;
    let (sha256, sha512) = file_hash::sha256_and_sha512(image)?;
    check_root_hash(&ddi, image, &manifest, &manifest_path)?;

    let signature = signature_partition(&ddi.root_hash, key, cert)?;
    let found = ImageHashes {
        size: ddi.len,
        sha256,
        sha512,
    };
    let signed = stage_signed_image(
        &mut out,
        &paths,
        &ddi,
        &signature,
        found,
        &manifest_path,
        &manifest,
    )?;

    let sums_path = paths.sums();
    let mut all_sums = sums::load(&sums_path)
        .with_context(|| format!("cannot update {}", sums_path.display()))?
        .map_or_else(sums::Sums::new, |file| file.sums);
    manifest.image.size = signed.size;
    manifest.image.sha256 = signed.sha256.clone();
    manifest.image.sha512 = signed.sha512;
    if let Some(record) = manifest.ddi.as_mut() {
        record.certificate_fingerprint = signature.certificate_fingerprint.clone();
    }
    let manifest_json = manifest.to_json();
    let complete = ddi.layout.signature_json.is_some()
        && manifest_json == manifest_text
        && all_sums.get(&paths.file_name) == Some(&signed.sha256);
    if complete {
        return Ok(Vec::new());
    }
    out.stage_bytes(
        manifest_path.file_name().and_then(|n| n.to_str()).unwrap(),
        manifest_json.as_bytes(),
    )?;
    sums::merge(&mut all_sums, &paths.file_name, &signed.sha256);
    out.stage_bytes("SHA256SUMS", sums::render(&all_sums).as_bytes())?;
    out.commit()
}

/// An image file's size and hashes, as found or as staged signed.
struct ImageHashes {
    size: u64,
    sha256: String,
    sha512: String,
}

/// The manifest `build` wrote next to the image, which sign rewrites.
fn manifest_path_of(paths: &ImagePaths) -> Result<PathBuf> {
    let Some(manifest_path) = paths.manifest() else {
        bail!(
            "{} does not end in .raw: give an image `build` wrote",
            paths.image.display()
        );
    };
    if !manifest_path.is_file() {
        bail!(
            "cannot read {}: sign rewrites the image's manifest, which `build` writes next to it",
            manifest_path.display()
        );
    }
    Ok(manifest_path)
}

/// The manifest's text, to tell whether signing changes it, and its contents.
fn read_manifest(manifest_path: &Path) -> Result<(String, Manifest)> {
    let manifest_text = fs::read_to_string(manifest_path).with_context(|| {
        format!(
            "cannot read {}: sign rewrites the image's manifest, which `build` writes next to it",
            manifest_path.display()
        )
    })?;
    let manifest = Manifest::from_json(&manifest_text)
        .with_context(|| format!("{} is not a valid manifest", manifest_path.display()))?;
    Ok((manifest_text, manifest))
}

/// The manifest must describe a DDI with this root hash.
fn check_root_hash(
    ddi: &SoundDdi,
    image: &Path,
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<()> {
    let record = manifest.ddi.as_ref().with_context(|| {
        format!(
            "{} describes a SquashFS image, not a DDI",
            manifest_path.display()
        )
    })?;
    ensure!(
        record.root_hash == ddi.root_hash,
        "{} has root hash {}, its manifest says {}",
        image.display(),
        ddi.root_hash,
        record.root_hash
    );
    Ok(())
}

/// Stages the signed image when `ddi` is unsigned; leaves an image signed with this key as it
/// is, once the manifest is shown to describe it or the unsigned image it was made from; refuses
/// an image signed with another key.
fn stage_signed_image(
    out: &mut OutputDir,
    paths: &ImagePaths,
    ddi: &SoundDdi,
    signature: &SignatureJson,
    found: ImageHashes,
    manifest_path: &Path,
    manifest: &Manifest,
) -> Result<ImageHashes> {
    let image = &paths.image;
    Ok(match &ddi.layout.signature_json {
        None => {
            ensure!(
                manifest.image.sha256 == found.sha256,
                "{} is not the image {} describes (sha256 {}, manifest {})",
                image.display(),
                manifest_path.display(),
                found.sha256,
                manifest.image.sha256
            );
            let index = out.stage(&paths.file_name)?;
            let written = ddi.rewrite(out.file(index), Some(signature))?;
            let (sha256, sha512) = file_hash::sha256_and_sha512(out.temp_path(index))?;
            ImageHashes {
                size: written.size,
                sha256,
                sha512,
            }
        }
        Some(existing) if existing == signature => {
            // Signed with this key already, by a run that may have been interrupted before it
            // renamed the manifest or SHA256SUMS: the manifest must describe this image or the
            // unsigned one it was made from (rebuilt here without the signature, byte for
            // byte, to compare).
            if manifest.image.sha256 != found.sha256 {
                let dir = &paths.dir;
                let mut unsigned = tempfile::tempfile_in(dir).with_context(|| {
                    format!("cannot create a temporary file in {}", dir.display())
                })?;
                ddi.rewrite(&mut unsigned, None)?;
                let unsigned_sha256 =
                    file_hash::sha256_open(&unsigned, Path::new("the unsigned image"))?;
                ensure!(
                    manifest.image.sha256 == unsigned_sha256,
                    "{} is not the image {} describes, signed or unsigned (sha256 {}, \
                     unsigned {unsigned_sha256}, manifest {})",
                    image.display(),
                    manifest_path.display(),
                    found.sha256,
                    manifest.image.sha256
                );
            }
            found
        }
        Some(existing) => bail!(
            "{} is already signed (certificate {}): signing it with another key would change a \
             published image; build and sign a new --version instead",
            image.display(),
            existing
                .certificate_fingerprint
                .as_deref()
                .unwrap_or("unknown")
        ),
    })
}
