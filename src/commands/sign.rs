//! `sysext-assembler sign`: adds the root-verity-sig partition to a DDI that `build --format
//! ddi` wrote, as a step of its own so the key never enters the (Nix) build. The image's hash
//! tree is checked against its data before anything is signed; the signed image, its manifest
//! and its SHA256SUMS line replace the unsigned ones atomically.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

use sysext_assembler::disk::ddi::{self, Ddi, SignatureJson};
use sysext_assembler::disk::verity::BLOCK_SIZE;
use sysext_assembler::feed::image_paths::ImagePaths;
use sysext_assembler::feed::manifest::Manifest;
use sysext_assembler::feed::output::OutputDir;
use sysext_assembler::feed::{file_hash, sums};
use sysext_assembler::hex;
use sysext_assembler::trust::signing;

const EXAMPLE: &str = "\
Example:
  sysext-assembler sign --key release.key --cert release.crt \\
      out/keepalived-v2.3.4-x86-64.raw

  rewrites out/keepalived-v2.3.4-x86-64.raw with its signature partition, and
  out/keepalived-v2.3.4-x86-64.manifest.json and the image's line in out/SHA256SUMS.";

/// Sign a DDI's dm-verity root hash, as systemd-sysext checks it.
///
/// The signature is PKCS#7 (DER) over the root hash, made by the openssl command with the
/// private key KEY of the X.509 certificate CERT, stored in a root-verity-sig partition as
/// systemd-repart stores it. The same image signed with the same RSA key gives the same bytes;
/// keys whose signatures are randomised (ECDSA) are refused. The manifest (IMAGE with .raw
/// replaced by .manifest.json) and SHA256SUMS next to the image are rewritten for the signed
/// bytes. Signing an image already signed with the same key changes nothing; an image signed
/// with another key is refused (its published bytes would change).
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The unsigned DDI, as `build --format ddi` wrote it.
    pub image: PathBuf,
    /// The private key (PEM), RSA.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The key's X.509 certificate (PEM): what nodes put in /etc/verity.d/.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    for path in sign(args)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs; returns the paths written (none when the image was already signed with this key and
/// its manifest and SHA256SUMS line already describe it).
///
/// The output directory is locked before the image is read and stays locked until the new
/// files are in place, so two runs cannot both find the image unsigned. Image, manifest and
/// SHA256SUMS are renamed in that order; a run interrupted between two renames leaves a signed
/// image whose manifest or SHA256SUMS line still describes the unsigned one, and running `sign`
/// again with the same key completes them (the image itself is then left as it is).
pub fn sign(args: &Args) -> Result<Vec<PathBuf>> {
    let image = &args.image;
    let paths = ImagePaths::of(image)?;
    let (file_name, dir) = (&paths.file_name, &paths.dir);
    let manifest_path = manifest_path_of(&paths)?;
    let mut out = OutputDir::open(dir)?;
    let manifest_text = fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {}: sign rewrites the image's manifest, which `build` writes next to it",
            manifest_path.display()
        )
    })?;
    let mut manifest = Manifest::from_json(&manifest_text)
        .with_context(|| format!("{} is not a valid manifest", manifest_path.display()))?;

    let (file, len, layout, root_hash) = open_sound_ddi(image)?;
    let (sha256, sha512) = file_hash::sha256_and_sha512(image)?;
    let record = manifest.ddi.as_ref().with_context(|| {
        format!(
            "{} describes a SquashFS image, not a DDI",
            manifest_path.display()
        )
    })?;
    ensure!(
        record.root_hash == root_hash,
        "{} has root hash {root_hash}, its manifest says {}",
        image.display(),
        record.root_hash
    );

    let certificate = signing::load_certificate(&args.cert)?;
    let der = signing::sign(&root_hash, &args.key, &args.cert)?;
    let signature = SignatureJson {
        root_hash: root_hash.clone(),
        certificate_fingerprint: Some(certificate.fingerprint()),
        signature: BASE64.encode(&der),
    };
    let data_len = layout.superblock.data_blocks * BLOCK_SIZE;
    let rewrite = |to: &mut File, signature: Option<&SignatureJson>| {
        let mut root = layout.root_reader(file.try_clone()?);
        ddi::write(
            to,
            layout.arch,
            &mut root,
            data_len,
            &layout.superblock.salt,
            layout.superblock.uuid,
            signature,
        )
    };
    let (size, signed_sha256, signed_sha512) = match &layout.signature_json {
        None => {
            ensure!(
                manifest.image.sha256 == sha256,
                "{} is not the image {} describes (sha256 {sha256}, manifest {})",
                image.display(),
                manifest_path.display(),
                manifest.image.sha256
            );
            let index = out.stage(file_name)?;
            let written = rewrite(out.file(index), Some(&signature))?;
            let (signed_sha256, signed_sha512) =
                file_hash::sha256_and_sha512(out.temp_path(index))?;
            (written.size, signed_sha256, signed_sha512)
        }
        Some(existing) if *existing == signature => {
            // Signed with this key already, by a run that may have been interrupted before it
            // renamed the manifest or SHA256SUMS: the manifest must describe this image or the
            // unsigned one it was made from (rebuilt here without the signature, byte for
            // byte, to compare).
            if manifest.image.sha256 != sha256 {
                let mut unsigned = tempfile::tempfile_in(dir).with_context(|| {
                    format!("cannot create a temporary file in {}", dir.display())
                })?;
                rewrite(&mut unsigned, None)?;
                let unsigned_sha256 =
                    file_hash::sha256_open(&unsigned, Path::new("the unsigned image"))?;
                ensure!(
                    manifest.image.sha256 == unsigned_sha256,
                    "{} is not the image {} describes, signed or unsigned (sha256 {sha256}, \
                     unsigned {unsigned_sha256}, manifest {})",
                    image.display(),
                    manifest_path.display(),
                    manifest.image.sha256
                );
            }
            (len, sha256, sha512)
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
    };

    let sums_path = paths.sums();
    let mut all_sums = sums::load(&sums_path)
        .with_context(|| format!("cannot update {}", sums_path.display()))?
        .map_or_else(sums::Sums::new, |file| file.sums);
    manifest.image.size = size;
    manifest.image.sha256 = signed_sha256.clone();
    manifest.image.sha512 = signed_sha512;
    if let Some(record) = manifest.ddi.as_mut() {
        record.certificate_fingerprint = Some(certificate.fingerprint());
    }
    let manifest_json = manifest.to_json();
    let complete = layout.signature_json.is_some()
        && manifest_json == manifest_text
        && all_sums.get(file_name) == Some(&signed_sha256);
    if complete {
        eprintln!(
            "{} is already signed with this key; nothing to do",
            image.display()
        );
        return Ok(Vec::new());
    }
    out.stage_bytes(
        manifest_path.file_name().and_then(|n| n.to_str()).unwrap(),
        manifest_json.as_bytes(),
    )?;
    sums::merge(&mut all_sums, file_name, &signed_sha256);
    out.stage_bytes("SHA256SUMS", sums::render(&all_sums).as_bytes())?;
    out.commit()
}

/// Opens the DDI at `image` and checks its hash tree against its data: nothing damaged is
/// signed. Returns the open file, its length, its layout and its root hash (hex).
fn open_sound_ddi(image: &Path) -> Result<(File, u64, Ddi, String)> {
    let mut file = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let len = file.metadata()?.len();
    if !ddi::looks_like_ddi(&mut file)? {
        bail!(
            "{} is a bare SquashFS image, which has no hash tree to sign: build it with \
             --format ddi",
            image.display()
        );
    }
    let layout = ddi::read(&mut file, len)
        .with_context(|| format!("{} is not a readable DDI", image.display()))?;
    let root_hash = match ddi::check_tree(&mut file, &layout)? {
        Ok(hash) => hex(&hash),
        Err(problem) => bail!("{} is damaged, not signing it: {problem}", image.display()),
    };
    Ok((file, len, layout, root_hash))
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
