//! What a node needs to trust signed images: the certificates systemd checks dm-verity root hash
//! signatures against, and the image policy that makes systemd-sysext demand such a signature.
//! Both are checked here before they reach a provisioning config, because on the node a bad one
//! fails late and quietly: systemd skips a certificate it cannot read (a debug message), and
//! systemd-sysext.service fails at boot on a policy it cannot parse, merging no extension at all.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// systemd's own policy for system extensions from an untrusted place (`image_policy_sysext_strict`
/// in src/shared/image-policy.c, used for the ESP's /.extra/sysext/): the image must carry a root
/// or /usr partition protected by dm-verity with a signed root hash; every other partition is
/// ignored. A plain SquashFS image (no partition table) counts as an unprotected root and is
/// refused, as is a DDI without a signature or with one no trusted certificate verifies.
pub const DEFAULT_POLICY: &str = "root=signed+absent:usr=signed+absent";

/// Partition identifiers systemd 257 knows (`partition_designator_table` in src/shared/gpt.c).
const DESIGNATORS: [&str; 13] = [
    "root",
    "usr",
    "home",
    "srv",
    "esp",
    "xbootldr",
    "swap",
    "root-verity",
    "usr-verity",
    "root-verity-sig",
    "usr-verity-sig",
    "tmp",
    "var",
];

/// Policy flags systemd 257 knows (`policy_flag_from_string_one` in src/shared/image-policy.c).
const FLAGS: [&str; 12] = [
    "verity",
    "signed",
    "encrypted",
    "unprotected",
    "unused",
    "absent",
    "open",
    "ignore",
    "read-only-on",
    "read-only-off",
    "growfs-on",
    "growfs-off",
];

/// Checks `policy` against the grammar of systemd.image-policy(7) as systemd 257 (Flatcar
/// Stable's) parses it: `*`, `-` or `~`, or colon-separated `PARTITION=FLAG[+FLAG...]` rules, at
/// most one per partition and one default (empty PARTITION). Stricter than systemd in one way:
/// no whitespace and no empty rule, since the policy goes unquoted into a unit's command line.
pub fn validate_policy(policy: &str) -> Result<()> {
    let see = "see systemd.image-policy(7); the default is \
               root=signed+absent:usr=signed+absent";
    if policy.is_empty() {
        bail!("the image policy is empty (systemd would read it as \"-\", which uses no partition at all); {see}");
    }
    if let Some(c) = policy
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "=:+-*~".contains(*c)))
    {
        bail!("the image policy {policy:?} contains {c:?}; it is made of partition names, flags and = : + only ({see})");
    }
    if matches!(policy, "*" | "-" | "~") {
        return Ok(());
    }
    let mut seen: Vec<&str> = Vec::new();
    for rule in policy.split(':') {
        let Some((partition, flags)) = rule.split_once('=') else {
            bail!("the image policy rule {rule:?} has no '=': rules are PARTITION=FLAG+FLAG, separated by ':' ({see})");
        };
        if !partition.is_empty() && !DESIGNATORS.contains(&partition) {
            bail!(
                "the image policy names the unknown partition {partition:?}; systemd 257 knows {} \
                 (and an empty name for the default rule)",
                DESIGNATORS.join(", ")
            );
        }
        if seen.contains(&partition) {
            let which = if partition.is_empty() {
                "the default (empty partition name)"
            } else {
                partition
            };
            bail!("the image policy has two rules for {which}; give one");
        }
        seen.push(partition);
        if flags == "-" {
            continue;
        }
        for flag in flags.split('+') {
            if !FLAGS.contains(&flag) {
                bail!(
                    "the image policy rule {rule:?} has the unknown flag {flag:?}; systemd 257 knows {}",
                    FLAGS.join(", ")
                );
            }
        }
    }
    Ok(())
}

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
        let Ok(der) = crate::base64::decode(&body) else {
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
        let encoded = crate::base64::encode(&self.der);
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

    #[test]
    fn policies_systemd_257_parses_are_accepted() {
        for p in [
            DEFAULT_POLICY,
            "*",
            "-",
            "~",
            "root=signed:usr=signed:=absent",
            "=ignore",
            "root=verity+signed+read-only-on:usr=-",
            "usr-verity-sig=unused+absent",
        ] {
            validate_policy(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn policies_systemd_257_refuses_are_refused() {
        for (p, needle) in [
            ("", "empty"),
            ("root=signed:", "no '='"),
            ("root", "no '='"),
            ("root=signed:root=verity", "two rules for root"),
            ("=absent:=ignore", "the default"),
            ("rot=signed", "unknown partition \"rot\""),
            ("root=sign", "unknown flag \"sign\""),
            ("root=signed+squashfs", "unknown flag"),
            ("root=signed :usr=signed", "contains ' '"),
            ("Root=signed", "contains 'R'"),
            ("root=signed;x", "contains ';'"),
        ] {
            let e = validate_policy(p).expect_err(p).to_string();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }
}
