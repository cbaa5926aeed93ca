//! `sysext-assembler butane`: a Butane config (variant flatcar, version 1.1.0) that provisions a
//! Flatcar machine with an image from a feed: Ignition downloads the image into
//! /opt/extensions/NAME/ and checks it against the sha512 from the manifest before anything
//! uses it, links /etc/extensions/NAME.raw to it, installs the same sysupdate transfer file
//! `build --update-url` writes, and enables the systemd-sysupdate timer with the drop-in that
//! updates this component (the pattern of Flatcar's sysext-bakery). With `--config` it places
//! keepalived.conf readable by root only; with `--signing-key` it installs the feed's public key
//! that the transfer's `Verify=yes` checks SHA256SUMS.gpg against.
//!
//! The YAML is written by hand: every value that comes from input is either a validated token
//! or emitted as a double-quoted scalar with every non-ASCII or special character escaped, and
//! multi-line text is a literal block only when it round-trips exactly (see [`yaml_text`]).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::manifest::Manifest;
use crate::names::{image_file_name, transfer_file_name, validate_name, validate_version, Arch};
use crate::sysupdate::{render_transfer, validate_update_url};

/// Write a Butane config that deploys an image and keeps it updated.
///
/// The image is downloaded from URL/FILE (FILE from the manifest) into /opt/extensions/NAME/ and
/// checked by Ignition against the manifest's sha512 before first boot uses it;
/// /etc/extensions/NAME.raw links to it. The sysupdate transfer file (the one `build
/// --update-url` writes) goes to /etc/sysupdate.NAME.d/, and systemd-sysupdate.timer runs
/// `systemd-sysupdate -C NAME update`; when the current version changes, /run/reboot-required
/// is created so a reboot manager (kured, FLUO) can reboot the node at a safe time.
///
/// Transpile the output with `butane --strict` to get the Ignition config.
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
}

/// Where keepalived reads its configuration by default.
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
/// The keyring systemd-sysupdate (through systemd-pull) checks signatures against. systemd 257
/// reads it instead of /usr/lib/systemd/import-pubring.gpg; 262 reads it when there is no
/// /etc/systemd/import-pubring.pgp and trusts /usr/lib/systemd/import-pubring.pgp besides
/// (tests/system/test_sysupdate.py, test_keyring).
pub const IMPORT_PUBRING: &str = "/etc/systemd/import-pubring.gpg";
/// Flatcar's workaround: plain `systemd-sysupdate` (the service's ExecStart) fails without any
/// transfer in /etc/sysupdate.d; this one never matches anything.
pub const NOOP_TRANSFER: &str = "[Source]\nType=regular-file\nPath=/\nMatchPattern=invalid@v.raw\n[Target]\nType=regular-file\nPath=/\n";
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
    let out = render(
        &manifest,
        &args.update_url,
        config.as_deref(),
        key.as_deref(),
    )?;
    print!("{out}");
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

/// Checks that the manifest names a deployable image and returns (name, image file name).
fn deployable(manifest: &Manifest) -> Result<(String, String)> {
    validate_name(&manifest.name)?;
    validate_version(&manifest.version)?;
    let arch: Arch = manifest.arch.parse()?;
    let file = image_file_name(&manifest.name, &manifest.version, arch);
    if manifest.image.file != file {
        bail!(
            "the manifest's image file {:?} is not the name build gives {file:?}",
            manifest.image.file
        );
    }
    let sha512 = &manifest.image.sha512;
    if sha512.len() != 128
        || !sha512
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        bail!("the manifest's sha512 {sha512:?} is not 128 lowercase hex digits");
    }
    Ok((manifest.name.clone(), file))
}

/// The Butane document.
pub fn render(
    manifest: &Manifest,
    update_url: &str,
    config: Option<&str>,
    key: Option<&[u8]>,
) -> Result<String> {
    validate_update_url(update_url)?;
    let (name, file) = deployable(manifest)?;
    let transfer = render_transfer(&name, update_url)?;
    let dir = format!("/opt/extensions/{name}");
    let image_path = format!("{dir}/{file}");
    let source = format!("{}/{file}", update_url.trim_end_matches('/'));
    let marker = |which: &str| format!("/run/sysupdate-{name}.{which}");

    let mut y = String::new();
    let w = &mut y;
    let _ = writeln!(
        w,
        "# Butane config for the {name} system extension {file}, written by sysext-assembler"
    );
    let _ = writeln!(
        w,
        "# {} from its manifest. Transpile: butane --strict < this.bu > this.ign",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(w, "variant: flatcar");
    let _ = writeln!(w, "version: 1.1.0");
    let _ = writeln!(w, "storage:");
    let _ = writeln!(w, "  directories:");
    let _ = writeln!(w, "    - path: {}", quote(&dir));
    let _ = writeln!(w, "      mode: 493 # 0755");
    let _ = writeln!(w, "  files:");
    let _ = writeln!(
        w,
        "    # Ignition refuses the download unless its sha512 is the manifest's."
    );
    let _ = writeln!(w, "    - path: {}", quote(&image_path));
    let _ = writeln!(w, "      mode: 420 # 0644");
    let _ = writeln!(w, "      contents:");
    let _ = writeln!(w, "        source: {}", quote(&source));
    let _ = writeln!(w, "        verification:");
    let _ = writeln!(
        w,
        "          hash: {}",
        quote(&format!("sha512-{}", manifest.image.sha512))
    );
    let _ = writeln!(
        w,
        "    - path: {}",
        quote(&format!(
            "/etc/sysupdate.{name}.d/{}",
            transfer_file_name(&name)
        ))
    );
    let _ = writeln!(w, "      mode: 420 # 0644");
    let _ = writeln!(w, "      contents:");
    let _ = writeln!(w, "        inline: {}", yaml_text(&transfer, 10));
    let _ = writeln!(w, "    - path: \"/etc/sysupdate.d/noop.conf\"");
    let _ = writeln!(w, "      mode: 420 # 0644");
    let _ = writeln!(w, "      contents:");
    let _ = writeln!(w, "        inline: {}", yaml_text(NOOP_TRANSFER, 10));
    if let Some(key) = key {
        let _ = writeln!(w, "    - path: {}", quote(IMPORT_PUBRING));
        let _ = writeln!(w, "      mode: 420 # 0644");
        let _ = writeln!(w, "      contents:");
        let _ = writeln!(
            w,
            "        source: {}",
            quote(&format!("data:;base64,{}", base64(key)))
        );
    }
    if let Some(config) = config {
        let _ = writeln!(w, "    - path: {}", quote(KEEPALIVED_CONF));
        let _ = writeln!(w, "      mode: 384 # 0600: it holds the VRRP password");
        let _ = writeln!(w, "      contents:");
        let _ = writeln!(w, "        inline: {}", yaml_text(config, 10));
    }
    let _ = writeln!(w, "  links:");
    let _ = writeln!(
        w,
        "    - path: {}",
        quote(&format!("/etc/extensions/{name}.raw"))
    );
    let _ = writeln!(w, "      target: {}", quote(&image_path));
    let _ = writeln!(w, "      hard: false");
    let _ = writeln!(w, "systemd:");
    let _ = writeln!(w, "  units:");
    let _ = writeln!(w, "    - name: systemd-sysupdate.timer");
    let _ = writeln!(w, "      enabled: true");
    let _ = writeln!(w, "    - name: systemd-sysupdate.service");
    let _ = writeln!(w, "      dropins:");
    let _ = writeln!(w, "        - name: {}", quote(&format!("{name}.conf")));
    let dropin = format!(
        "[Service]\n\
         ExecStartPre=/usr/bin/sh -c \"readlink --canonicalize /etc/extensions/{name}.raw > {before}\"\n\
         ExecStartPre=/usr/lib/systemd/systemd-sysupdate -C {name} update\n\
         ExecStartPost=/usr/bin/sh -c \"readlink --canonicalize /etc/extensions/{name}.raw > {after}\"\n\
         ExecStartPost=/usr/bin/sh -c \"if ! cmp --silent {before} {after}; then touch /run/reboot-required; fi\"\n",
        before = marker("before"),
        after = marker("after"),
    );
    let _ = writeln!(w, "          contents: {}", yaml_text(&dropin, 12));
    Ok(y)
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

/// Standard base64 with padding (RFC 4648), for the `data:` URL of the key.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn block_or_quote() {
        assert_eq!(yaml_text("a\nb\n", 2), "|\n  a\n  b");
        assert_eq!(yaml_text("a", 2), "|-\n  a");
        assert!(yaml_text(" leading", 2).starts_with('"'));
        assert!(yaml_text("cr\r\n", 2).starts_with('"'));
        assert_eq!(quote("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c\\u00e9\"");
    }
}
