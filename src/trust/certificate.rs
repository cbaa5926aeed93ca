//! The X.509 certificates systemd checks dm-verity root hash signatures against, read from PEM
//! and checked before they reach a provisioning config: on the node systemd skips a certificate
//! it cannot read with no more than a debug message.

use anyhow::{bail, Result};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use sha2::{Digest, Sha256};

/// An X.509 certificate as its DER bytes, read from PEM.
pub struct Certificate {
    der: Vec<u8>,
}

impl Certificate {
    /// The one certificate in PEM `text`: the file must hold exactly one PEM block, labelled
    /// `CERTIFICATE`, and nothing else PEM. systemd reads certificates with OpenSSL's
    /// PEM_read_X509, which takes the first certificate of a file and ignores the rest, while
    /// `openssl smime -certfile` trusts every certificate in the file, `X509 CERTIFICATE` and
    /// `TRUSTED CERTIFICATE` blocks included: so a file with more than one block, or a block
    /// of another label, is refused rather than half used or used more widely than shown. A
    /// private key is refused so that it never ends up on a node. This is a structural check
    /// (PEM armor, base64, one DER SEQUENCE holding a SEQUENCE), not a full X.509 parse.
    pub fn from_pem(text: &str) -> Result<Certificate> {
        if text.contains("PRIVATE KEY-----") {
            bail!(
                "it holds a private key, which must never be copied to nodes: give the \
                 certificate alone (`openssl x509 -in FILE -out cert.pem`)"
            );
        }
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        // Every PEM block OpenSSL's reader could find, by its label.
        let labels: Vec<&str> = text
            .match_indices("-----BEGIN ")
            .map(|(at, begin)| {
                let rest = &text[at + begin.len()..];
                let line = rest.lines().next().unwrap_or("");
                line.strip_suffix("-----").unwrap_or(line)
            })
            .collect();
        if let Some(other) = labels.iter().find(|l| **l != "CERTIFICATE") {
            bail!(
                "it holds a PEM block labelled {other:?}: give a file with exactly one \
                 {BEGIN} block and nothing else (openssl would trust an `X509 CERTIFICATE` or \
                 `TRUSTED CERTIFICATE` block too; rewrite it with `openssl x509 -in FILE -out \
                 cert.pem`)"
            );
        }
        let count = labels.len();
        if count == 0 {
            bail!(
                "it has no PEM certificate ({BEGIN}); convert a DER certificate with \
                 `openssl x509 -inform DER -in FILE -out cert.pem`"
            );
        }
        if count > 1 {
            bail!(
                "it holds {count} certificates, and a certificate file holds exactly one (systemd \
                 reads only the first, openssl trusts all): give each certificate in a file of \
                 its own (one --verity-certificate each)"
            );
        }
        let start = text.find(BEGIN).unwrap() + BEGIN.len();
        let Some(len) = text[start..].find(END) else {
            bail!("its certificate has no {END} line; the file is cut short");
        };
        let body: String = text[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let Ok(der) = BASE64.decode(&body) else {
            bail!("its certificate is not valid base64 between the BEGIN and END lines");
        };
        if !is_certificate_der(&der) {
            bail!("its PEM block is not an X.509 certificate (DER SEQUENCE of a SEQUENCE)");
        }
        Ok(Certificate { der })
    }

    /// The certificate's SHA-256 fingerprint in lowercase hex, as `openssl x509 -fingerprint
    /// -sha256` shows it (there in uppercase, with colons).
    pub fn fingerprint(&self) -> String {
        crate::hex(&Sha256::digest(&self.der))
    }

    /// The certificate as PEM with 64-column lines, the form `openssl x509` writes.
    pub fn pem(&self) -> String {
        let encoded = BASE64.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

/// A DER SEQUENCE, definite length, spanning exactly `der`, whose first element is a SEQUENCE
/// (tbsCertificate).
fn is_certificate_der(der: &[u8]) -> bool {
    fn header(b: &[u8]) -> Option<(usize, usize)> {
        // (header length, content length) of the element at the start of b.
        let first = *b.get(1)?;
        if first < 0x80 {
            return Some((2, first as usize));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < 2 + n {
            return None;
        }
        let len = b[2..2 + n].iter().fold(0usize, |l, &x| l << 8 | x as usize);
        Some((2 + n, len))
    }
    match (der.first(), header(der)) {
        (Some(0x30), Some((h, len))) if h + len == der.len() => {
            der.get(h) == Some(&0x30)
                && header(&der[h..]).is_some_and(|(h2, l2)| h + h2 + l2 <= der.len())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signature partitions and certificates come from anywhere: the engine must read only
    /// canonical base64 (RFC 4648 section 4, padded), which the crate's STANDARD engine does.
    #[test]
    fn base64_is_read_strictly() {
        for (input, want) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(BASE64.decode(input).unwrap(), want.as_bytes(), "{input}");
            assert_eq!(BASE64.encode(want), input);
        }
        for bad in ["Zg=", "Zg=a", "Z===", "Zh==", "Zm9v\n", "Zg==Zg==", "Zg"] {
            assert!(BASE64.decode(bad).is_err(), "{bad:?}");
        }
    }
}
