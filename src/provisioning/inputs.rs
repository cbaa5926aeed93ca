//! The files `sysext-assembler butane` puts on a node, read and checked before anything is
//! described: keepalived.conf, the feed's OpenPGP public key and the verity certificates with
//! the image policy. Each is small and given by the user, so each is read under a size limit and
//! refused with what to do when it is not what the node needs (an armored key, a DER
//! certificate, a certificate given twice).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::provisioning::{Trust, TrustedCertificate};
use crate::trust::certificate::Certificate;
use crate::trust::policy::validate_policy;

/// Largest keepalived.conf or key accepted; both are small text or key files.
const MAX_INPUT_BYTES: u64 = 1 << 20;

fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "the {what} {} is {} bytes; at most {MAX_INPUT_BYTES} are accepted",
            path.display(),
            meta.len()
        );
    }
    fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// keepalived.conf, as UTF-8 text.
pub fn read_config(path: &Path) -> Result<String> {
    let bytes = read_limited(path, "keepalived config")?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the keepalived config {} is not UTF-8 text", path.display()))
}

/// Accepts a binary OpenPGP public key (what `gpg --export` writes and gpg's `--keyring` reads);
/// refuses ASCII armor, which the keyring file cannot be.
pub fn read_signing_key(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_limited(path, "signing key")?;
    if bytes.starts_with(b"-----BEGIN PGP") {
        bail!(
            "the signing key {} is ASCII-armored; systemd's keyring must be binary: use \
             `gpg --export KEYID > key.gpg` (or `gpg --dearmor`)",
            path.display()
        );
    }
    // First packet: a public-key packet (tag 6), old or new packet format (RFC 4880 4.2).
    let tag = match bytes.first() {
        Some(b) if b & 0xc0 == 0xc0 => b & 0x3f,
        Some(b) if b & 0xc0 == 0x80 => (b >> 2) & 0x0f,
        _ => 0,
    };
    if tag != 6 {
        bail!(
            "the signing key {} does not start with an OpenPGP public key packet; export it with \
             `gpg --export KEYID > key.gpg`",
            path.display()
        );
    }
    Ok(bytes)
}

/// The certificates, each checked, and the policy, checked against systemd 257's grammar.
pub fn read_trust(paths: &[impl AsRef<Path>], policy: &str) -> Result<Trust> {
    validate_policy(policy).context("bad --image-policy")?;
    let mut certificates: Vec<TrustedCertificate> = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = read_limited(path, "verity certificate")?;
        let text = String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!(
                "the verity certificate {} is not PEM text; convert a DER certificate with \
                 `openssl x509 -inform DER -in FILE -out cert.pem`",
                path.display()
            )
        })?;
        let cert = Certificate::from_pem(&text)
            .with_context(|| format!("the verity certificate {} is refused", path.display()))?;
        let fingerprint = cert.fingerprint();
        if certificates.iter().any(|c| c.fingerprint == fingerprint) {
            bail!(
                "the verity certificate {} is given twice (same SHA-256 fingerprint {fingerprint})",
                path.display()
            );
        }
        certificates.push(TrustedCertificate {
            fingerprint,
            pem: cert.pem(),
        });
    }
    Ok(Trust {
        certificates,
        policy: policy.to_string(),
    })
}
