//! `sysext-assembler butane`: the provisioning config for a Flatcar machine that runs an image
//! from a feed, as a Butane config (variant flatcar, version 1.0.0) or, with `--ignition`, as the
//! Ignition config (spec 3.3.0) Butane makes of it. What the node gets is described once in
//! [`crate::provisioning`]; this module reads the inputs and writes that description as YAML,
//! and [`crate::ignition`] writes it as JSON.
//!
//! Version 1.0.0 because nothing in the config needs more: flatcar 1.1.0 (Ignition 3.4.0) only
//! adds `arn:` URLs, setuid/setgid/sticky modes on directories, LUKS `discard`/`open_options` and
//! `*_local` contents, none of which is used here, and 3.3.0 is read by older Ignition releases.
//!
//! The YAML is written by hand: every value that comes from input is either a validated token
//! or emitted as a double-quoted scalar with every non-ASCII or special character escaped, and
//! multi-line text is a literal block only when it round-trips exactly (see [`yaml_text`]).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::ignition;
use crate::manifest::Manifest;
use crate::provisioning::{
    base64_data_url, describe, Contents, Node, Trust, TrustedCertificate, IMPORT_PUBRING,
};
use crate::trust::{validate_policy, Certificate, DEFAULT_POLICY};

/// Write a Butane or Ignition config that deploys an image and keeps it updated.
///
/// The image is downloaded from URL/FILE (FILE from the manifest) into /opt/extensions/NAME/ and
/// checked by Ignition against the manifest's sha512 before first boot uses it;
/// /etc/extensions/NAME.raw links to it. The sysupdate transfer file (the one `build
/// --update-url` writes) goes to /etc/sysupdate.NAME.d/, and systemd-sysupdate.timer runs
/// `systemd-sysupdate -C NAME update`; when the current version changes, /run/reboot-required
/// is created so a reboot manager (kured, FLUO) can reboot the node at a safe time.
///
/// With --verity-certificate, the node trusts images signed by that certificate's key
/// (dm-verity root hash signature): the certificate goes to /etc/verity.d/, and
/// systemd-sysext.service (from systemd 259 on, every systemd-sysext run, through
/// /etc/systemd/sysext.conf.d/) merges only what --image-policy allows; the default,
/// root=signed+absent:usr=signed+absent, refuses unsigned and plain SquashFS images. The policy
/// holds for every extension on the node, not only this one.
///
/// Transpile the Butane output with `butane --strict`, or write the Ignition config directly
/// with --ignition (spec 3.3.0, the same content).
///
/// Example:
///   sysext-assembler butane --manifest keepalived-v2.3.4-x86-64.manifest.json \
///       --update-url https://downloads.example.com/keepalived/ \
///       --config keepalived.conf --signing-key feed-key.gpg > keepalived.bu
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image's manifest (NAME-vVERSION-ARCH.manifest.json from `build`).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The feed: the URL of the directory holding the images and SHA256SUMS.
    #[arg(long, value_name = "URL")]
    update_url: String,
    /// keepalived.conf to place at /etc/keepalived/keepalived.conf (mode 0600).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The feed's OpenPGP public key (binary, `gpg --export KEYID`), installed as
    /// /etc/systemd/import-pubring.gpg for the transfer's Verify=yes.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// A PEM X.509 certificate of a key that signs the images, installed as
    /// /etc/verity.d/NAME-FINGERPRINT.crt (mode 0644; FINGERPRINT: the first 16 hex digits of
    /// its SHA-256). Repeat it to trust several keys, as during a key rotation.
    #[arg(long, value_name = "FILE")]
    verity_certificate: Vec<PathBuf>,
    /// The image policy systemd-sysext.service merges every extension with (syntax:
    /// systemd.image-policy(7), as systemd 257 reads it). Needs --verity-certificate, which
    /// alone sets root=signed+absent:usr=signed+absent.
    #[arg(
        long,
        value_name = "POLICY",
        requires = "verity_certificate",
        default_value_if(
            "verity_certificate",
            clap::builder::ArgPredicate::IsPresent,
            DEFAULT_POLICY
        )
    )]
    image_policy: Option<String>,
    /// Print the Ignition config (JSON, spec 3.3.0) instead of the Butane config: the same
    /// files, links and units, for provisioning without Butane.
    #[arg(long)]
    ignition: bool,
}

/// Largest keepalived.conf or key accepted; both are small text or key files.
const MAX_INPUT_BYTES: u64 = 1 << 20;

pub fn run(args: &Args) -> Result<ExitCode> {
    let text = fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read the manifest {}", args.manifest.display()))?;
    let manifest = Manifest::from_json(&text)
        .with_context(|| format!("{} is not a valid manifest", args.manifest.display()))?;
    let config = match &args.config {
        Some(path) => Some(read_config(path)?),
        None => None,
    };
    let key = match &args.signing_key {
        Some(path) => Some(read_signing_key(path)?),
        None => None,
    };
    let trust = match &args.image_policy {
        Some(policy) => Some(read_trust(&args.verity_certificate, policy)?),
        None => None,
    };
    if let Some(trust) = &trust {
        check_trust_fits(&manifest, &args.manifest, trust)?;
    }
    let node = describe(
        &manifest,
        &args.update_url,
        config.as_deref(),
        key.as_deref(),
        trust.as_ref(),
    )?;
    let out = if args.ignition {
        ignition::render(&node)
    } else {
        render(&node)
    };
    print!("{out}");
    if let Some(trust) = &trust {
        eprintln!(
            "sysext-assembler: note: the image policy {} holds for every extension on the node: \
             systemd-sysext.service refuses to merge any if one image fails it, so every image \
             in the extension directories must be signed by a key whose certificate is in a \
             verity.d directory",
            trust.policy
        );
    }
    if key.is_none() {
        eprintln!(
            "sysext-assembler: note: no --signing-key: the transfer file verifies SHA256SUMS.gpg \
             (Verify=yes), so updates fail until {IMPORT_PUBRING} holds the feed's public key"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_limited(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
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

fn read_config(path: &PathBuf) -> Result<String> {
    let bytes = read_limited(path, "keepalived config")?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the keepalived config {} is not UTF-8 text", path.display()))
}

/// Accepts a binary OpenPGP public key (what `gpg --export` writes and gpg's `--keyring` reads);
/// refuses ASCII armor, which the keyring file cannot be.
fn read_signing_key(path: &PathBuf) -> Result<Vec<u8>> {
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

/// Refuses trust settings that contradict the image the manifest describes: the node would
/// refuse its own keepalived (and, since the policy holds for every extension, merge none), or
/// the certificates would check nothing.
fn check_trust_fits(manifest: &Manifest, path: &std::path::Path, trust: &Trust) -> Result<()> {
    let shown = path.display();
    if trust.policy == "*" {
        bail!(
            "--image-policy '*' lets every image through, signed or not, so the \
             --verity-certificate files would check nothing: keep the default policy \
             ({DEFAULT_POLICY}) or give one that demands signatures, or drop \
             --verity-certificate"
        );
    }
    let Some(ddi) = &manifest.ddi else {
        if !policy_allows_unprotected_root(&trust.policy) {
            bail!(
                "{shown} describes a bare SquashFS image, which carries no signature, and the \
                 image policy {} accepts only signed images: the node would refuse it, and with \
                 it every other extension. Build the image with --format ddi, sign it \
                 (sysext-assembler sign) and give that manifest, or drop --verity-certificate",
                trust.policy
            );
        }
        return Ok(());
    };
    let Some(fingerprint) = &ddi.certificate_fingerprint else {
        bail!(
            "{shown} describes an unsigned DDI, but --verity-certificate makes the node trust \
             signed images: sign it (sysext-assembler sign --key KEY --cert CERT IMAGE) and give \
             the manifest sign rewrote, or drop --verity-certificate"
        );
    };
    if !trust
        .certificates
        .iter()
        .any(|c| c.fingerprint == *fingerprint)
    {
        bail!(
            "{shown} says the image is signed by certificate {fingerprint}, which is none of the \
             --verity-certificate files ({}): the node would refuse it. Give the certificate of \
             the key that signed it (as well, during a key rotation)",
            trust
                .certificates
                .iter()
                .map(|c| c.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Whether `policy` (valid, see `validate_policy`) lets a root without dm-verity through: a bare
/// SquashFS is an unprotected root partition to systemd. Decided by the root rule, else the
/// default rule; a policy with neither is taken to allow it (nothing here contradicts it).
fn policy_allows_unprotected_root(policy: &str) -> bool {
    let rules: Vec<(&str, &str)> = policy
        .split(':')
        .filter_map(|r| r.split_once('='))
        .collect();
    let flags = rules
        .iter()
        .find(|(p, _)| *p == "root")
        .or_else(|| rules.iter().find(|(p, _)| p.is_empty()))
        .map(|(_, flags)| *flags);
    match flags {
        None => true,
        Some(flags) => flags
            .split('+')
            .any(|f| matches!(f, "unprotected" | "open")),
    }
}

/// The certificates, each checked, and the policy, checked against systemd 257's grammar.
fn read_trust(paths: &[PathBuf], policy: &str) -> Result<Trust> {
    validate_policy(policy).context("bad --image-policy")?;
    let mut certificates: Vec<TrustedCertificate> = Vec::new();
    for path in paths {
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

/// The Butane document for `node`.
pub fn render(node: &Node) -> String {
    let mut y = String::new();
    let w = &mut y;
    let _ = writeln!(
        w,
        "# Butane config for the {} system extension {}, written by sysext-assembler",
        node.name, node.image_file
    );
    let _ = writeln!(
        w,
        "# {} from its manifest. Transpile: butane --strict < this.bu > this.ign",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(w, "variant: flatcar");
    let _ = writeln!(w, "version: 1.0.0");
    let _ = writeln!(w, "storage:");
    let _ = writeln!(w, "  directories:");
    for d in &node.directories {
        let _ = writeln!(w, "    - path: {}", quote(&d.path));
        let _ = writeln!(w, "      mode: {} # 0{:o}", d.mode, d.mode);
    }
    let _ = writeln!(w, "  files:");
    for f in &node.files {
        if let Some(comment) = f.comment {
            let _ = writeln!(w, "    # {comment}");
        }
        let _ = writeln!(w, "    - path: {}", quote(&f.path));
        let note = f.mode_note.map(|n| format!(": {n}")).unwrap_or_default();
        let _ = writeln!(w, "      mode: {} # 0{:o}{note}", f.mode, f.mode);
        let _ = writeln!(w, "      contents:");
        match &f.contents {
            Contents::Text(text) => {
                let _ = writeln!(w, "        inline: {}", yaml_text(text, 10));
            }
            Contents::Binary(bytes) => {
                let _ = writeln!(w, "        source: {}", quote(&base64_data_url(bytes)));
            }
            Contents::Remote { url, sha512 } => {
                let _ = writeln!(w, "        source: {}", quote(url));
                let _ = writeln!(w, "        verification:");
                let _ = writeln!(w, "          hash: {}", quote(&format!("sha512-{sha512}")));
            }
        }
    }
    let _ = writeln!(w, "  links:");
    for l in &node.links {
        let _ = writeln!(w, "    - path: {}", quote(&l.path));
        let _ = writeln!(w, "      target: {}", quote(&l.target));
        let _ = writeln!(w, "      hard: false");
    }
    let _ = writeln!(w, "systemd:");
    let _ = writeln!(w, "  units:");
    for u in &node.units {
        if let Some(comment) = u.comment {
            let _ = writeln!(w, "    # {comment}");
        }
        let _ = writeln!(w, "    - name: {}", u.name);
        if let Some(enabled) = u.enabled {
            let _ = writeln!(w, "      enabled: {enabled}");
        }
        if !u.dropins.is_empty() {
            let _ = writeln!(w, "      dropins:");
            for d in &u.dropins {
                let _ = writeln!(w, "        - name: {}", quote(&d.name));
                let _ = writeln!(w, "          contents: {}", yaml_text(&d.contents, 12));
            }
        }
    }
    y
}

/// A YAML double-quoted scalar that any YAML 1.1 or 1.2 parser reads back as `s`: printable
/// ASCII as is, everything else escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Multi-line text as a YAML value at `indent` spaces: a literal block (`|`, `|-` or `|+`
/// depending on trailing newlines) when that reads back exactly, else a quoted scalar. A block
/// is not safe when the first line starts with whitespace (YAML would take it for indentation)
/// or when the text has characters a block cannot carry (control characters, CR, BOM, the
/// Unicode line separators some YAML 1.1 parsers break lines at).
pub fn yaml_text(text: &str, indent: usize) -> String {
    let block_safe = !text.is_empty()
        && !text.starts_with([' ', '\t', '\n'])
        && text.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || (!c.is_control() && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'))
        })
        // A line holding only whitespace right before the end could be taken as indentation
        // noise by some parsers; quote instead.
        && !text.lines().any(|l| !l.is_empty() && l.trim().is_empty());
    if !block_safe {
        return quote(text);
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    let pad = " ".repeat(indent);
    let mut out = String::from(header);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_or_quote() {
        assert_eq!(yaml_text("a\nb\n", 2), "|\n  a\n  b");
        assert_eq!(yaml_text("a", 2), "|-\n  a");
        assert!(yaml_text(" leading", 2).starts_with('"'));
        assert!(yaml_text("cr\r\n", 2).starts_with('"'));
        assert_eq!(quote("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c\\u00e9\"");
    }
}
