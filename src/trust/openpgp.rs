//! Checking the feed's OpenPGP signature of `SHA256SUMS` (`SHA256SUMS.gpg`), as a node's
//! systemd-sysupdate does before it trusts any line of the list, so that `verify --keyring`
//! checks the whole chain a node checks.
//!
//! The check is GnuPG's `gpgv`, run as a child process like `openssl` for the dm-verity
//! signatures: systemd-pull itself hands the check to GnuPG, so `gpgv` reads the same binary
//! keyring (`/etc/systemd/import-pubring.gpg`, `gpg --export` output) with the same
//! implementation of OpenPGP, and no second implementation (nor a new dependency tree of
//! cryptographic crates in the build) has to be trusted. `gpgv` is GnuPG's verify-only tool: it
//! trusts every key of the keyrings it is given and nothing else, and runs here with an empty
//! home directory of its own, so no key of the user's GnuPG setup takes part.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Checks `signature` (a detached OpenPGP signature, binary or armored) over `data` against the
/// keys of the binary keyring at `keyring`. `Ok(Ok(fingerprint))` names the signing key,
/// `Ok(Err(why))` is a signature that does not verify; `Err` means the check could not be made.
pub fn verify_detached(
    data: &[u8],
    signature: &[u8],
    keyring: &Path,
) -> Result<std::result::Result<String, String>> {
    let ring = fs::read(keyring)
        .with_context(|| format!("cannot read the keyring {}", keyring.display()))?;
    if ring.starts_with(b"-----BEGIN PGP") {
        bail!(
            "the keyring {} is ASCII-armored; give a binary keyring, as systemd-sysupdate reads \
             /etc/systemd/import-pubring.gpg (`gpg --export KEYID > FILE`, or `gpg --dearmor`)",
            keyring.display()
        );
    }
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let home = work.path().join("home");
    fs::create_dir(&home).with_context(|| format!("cannot create {} for gpgv", home.display()))?;
    let (data_path, sig_path, ring_path) = (
        work.path().join("SHA256SUMS"),
        work.path().join("SHA256SUMS.gpg"),
        work.path().join("keyring.gpg"),
    );
    // Copies of the bytes this process read: gpgv checks exactly those.
    fs::write(&data_path, data)
        .with_context(|| format!("cannot write {} for gpgv", data_path.display()))?;
    fs::write(&sig_path, signature)
        .with_context(|| format!("cannot write {} for gpgv", sig_path.display()))?;
    fs::write(&ring_path, &ring)
        .with_context(|| format!("cannot write {} for gpgv", ring_path.display()))?;
    let output = Command::new("gpgv")
        .arg("--homedir")
        .arg(&home)
        .args(["--status-fd", "1", "--keyring"])
        .arg(&ring_path)
        .arg(&sig_path)
        .arg(&data_path)
        .output()
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "--keyring needs GnuPG's gpgv, which is not installed (Debian: apt install \
                     gpgv)"
                )
            } else {
                anyhow::anyhow!("cannot run gpgv: {err}")
            }
        })?;
    let status = String::from_utf8_lossy(&output.stdout);
    // `[GNUPG:] VALIDSIG <fingerprint> ...`: the key whose signature verified.
    let valid = status.lines().find_map(|line| {
        line.strip_prefix("[GNUPG:] VALIDSIG ")
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_string)
    });
    match valid {
        Some(fingerprint) if output.status.success() => Ok(Ok(fingerprint)),
        _ => {
            let why = if status.contains("[GNUPG:] BADSIG") {
                "the signature does not match the list (BAD signature)".to_string()
            } else if status.contains("[GNUPG:] NO_PUBKEY") || status.contains("[GNUPG:] ERRSIG") {
                format!(
                    "no key of {} made the signature (or the signature is unreadable)",
                    keyring.display()
                )
            } else {
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("gpgv refused it")
                    .trim()
                    .to_string()
            };
            Ok(Err(why))
        }
    }
}
