//! Signing a DDI's root hash, and checking such a signature, exactly as systemd does: a
//! detached PKCS#7 signature (DER) over the root hash written as lowercase hex, without signed
//! attributes, with the signer's certificate included (`PKCS7_sign` with `PKCS7_DETACHED |
//! PKCS7_NOATTR | PKCS7_BINARY`, as systemd-repart), verified against the trusted certificate
//! alone, without chain or expiry checks (`PKCS7_NOINTERN | PKCS7_NOVERIFY`, as systemd's
//! userspace check against /etc/verity.d).
//!
//! The cryptography is the `openssl` command's, the library systemd itself uses, run as a child
//! process: the key stays a file the release engineer controls (never in the Nix build, never in
//! this process's memory), and no second implementation of PKCS#7 has to be trusted.
//! Reproducibility is checked, not assumed: every signature is made twice and must come out
//! the same, which holds for RSA (PKCS#1 v1.5) and fails for keys whose signatures are
//! randomised (ECDSA, RSA-PSS).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

use crate::disk::ddi::{self, Ddi, SignatureJson, Written};
use crate::disk::verity::BLOCK_SIZE;
use crate::hex;
use crate::trust::certificate::Certificate;

/// Runs `openssl ARGS` (stdin inherited, so a passphrase prompt reaches the user); `what` says
/// what for, in the errors. A failing status is the caller's to judge.
fn openssl(args: &[&OsStr], what: &str) -> Result<Output> {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::inherit())
        .output()
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "{what} needs the openssl command, which is not installed (Debian: apt \
                     install openssl)"
                )
            } else {
                anyhow::anyhow!("cannot run openssl to {what}: {err}")
            }
        })
}

/// Reads the PEM certificate at `path` (its SHA-256 fingerprint is what the signature partition
/// and the manifest name).
pub fn load_certificate(path: &Path) -> Result<Certificate> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the certificate {}", path.display()))?;
    Certificate::from_pem(&text)
        .with_context(|| format!("{} is not a usable certificate", path.display()))
}

/// Signs `root_hash_hex` with `key`, the private key of `cert`; returns the DER signature.
pub fn sign(root_hash_hex: &str, key: &Path, cert: &Path) -> Result<Vec<u8>> {
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data = work.path().join("roothash");
    fs::write(&data, root_hash_hex)
        .with_context(|| format!("cannot write {} for openssl", data.display()))?;
    fs::metadata(key).with_context(|| format!("cannot read the key {}", key.display()))?;
    let what = format!(
        "sign with the key {} and certificate {} (is the key the certificate's?)",
        key.display(),
        cert.display()
    );
    let sign_once = || -> Result<Vec<u8>> {
        let args: [&OsStr; 14] = [
            "smime".as_ref(),
            "-sign".as_ref(),
            "-binary".as_ref(),
            "-noattr".as_ref(),
            "-md".as_ref(),
            "sha256".as_ref(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            data.as_os_str(),
            "-signer".as_ref(),
            cert.as_os_str(),
            "-inkey".as_ref(),
            key.as_os_str(),
        ];
        let output = openssl(&args, &what)?;
        if !output.status.success() {
            bail!(
                "openssl could not {what}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output.stdout)
    };
    let first = sign_once()?;
    let second = sign_once()?;
    if first != second {
        bail!(
            "signing twice with {} gave different signatures, so the signed image would not be \
             reproducible: use an RSA key (PKCS#1 v1.5 signatures are deterministic; ECDSA and \
             RSA-PSS signatures are randomised)",
            key.display()
        );
    }
    Ok(first)
}

/// Checks `signature` (DER PKCS#7) over `root_hash_hex` against `cert` alone, read from
/// `cert_path`. openssl is given the one certificate as parsed here, written anew, never the
/// user's file: what is checked is exactly the certificate whose fingerprint is reported,
/// whatever else the file held or came to hold. `Ok(Err(why))` when it does not verify.
pub fn verify(
    root_hash_hex: &str,
    signature: &[u8],
    cert: &Certificate,
    cert_path: &Path,
) -> Result<std::result::Result<(), String>> {
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data = work.path().join("roothash");
    let sig = work.path().join("signature.p7s");
    let trusted = work.path().join("trusted.pem");
    fs::write(&data, root_hash_hex)
        .with_context(|| format!("cannot write {} for openssl", data.display()))?;
    fs::write(&sig, signature)
        .with_context(|| format!("cannot write {} for openssl", sig.display()))?;
    fs::write(&trusted, cert.pem())
        .with_context(|| format!("cannot write {} for openssl", trusted.display()))?;
    let args: [&OsStr; 15] = [
        "smime".as_ref(),
        "-verify".as_ref(),
        "-binary".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        sig.as_os_str(),
        "-content".as_ref(),
        data.as_os_str(),
        "-certfile".as_ref(),
        trusted.as_os_str(),
        "-nointern".as_ref(),
        "-noverify".as_ref(),
        "-out".as_ref(),
        "/dev/null".as_ref(),
    ];
    let output = openssl(&args, "check the signature")?;
    if output.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "the signature does not verify against {} (certificate {}): {}",
            cert_path.display(),
            cert.fingerprint(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
        )))
    }
}

/// A DDI whose hash tree was checked against its data: nothing damaged is signed.
pub struct SoundDdi {
    /// The open image.
    pub file: File,
    /// Its length in bytes.
    pub len: u64,
    pub layout: Ddi,
    /// The root hash, lowercase hex: what the signature covers.
    pub root_hash: String,
}

impl SoundDdi {
    /// Opens the DDI at `image` and checks its hash tree against its data.
    pub fn open(image: &Path) -> Result<SoundDdi> {
        let mut file =
            File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
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
        Ok(SoundDdi {
            file,
            len,
            layout,
            root_hash,
        })
    }

    /// Writes the same image to `to` with `signature` in its signature partition, or without
    /// one: the bytes `build` and `sign` lay out for that signature.
    pub fn rewrite(&self, to: &mut File, signature: Option<&SignatureJson>) -> Result<Written> {
        let layout = &self.layout;
        let mut root = layout.root_reader(self.file.try_clone()?);
        ddi::write(
            to,
            layout.arch,
            &mut root,
            layout.superblock.data_blocks * BLOCK_SIZE,
            &layout.superblock.salt,
            layout.superblock.uuid,
            signature,
        )
    }
}

/// The signature partition's content for `root_hash_hex`, signed with `key`, whose certificate
/// is `cert`.
pub fn signature_partition(root_hash_hex: &str, key: &Path, cert: &Path) -> Result<SignatureJson> {
    let certificate = load_certificate(cert)?;
    let der = sign(root_hash_hex, key, cert)?;
    Ok(SignatureJson {
        root_hash: root_hash_hex.to_string(),
        certificate_fingerprint: Some(certificate.fingerprint()),
        signature: BASE64.encode(&der),
    })
}
