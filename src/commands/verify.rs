//! `sysext-assembler verify`: the command line of [`sysext_assembler::verify`], which lets
//! someone who downloaded an image check it before a machine merges it, and its report as text
//! or JSON. Exit 0 when everything holds, 1 on any mismatch, 2 on usage or I/O errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use sysext_assembler::verify::{verify, Outcome};

/// Check a downloaded image against its SHA256SUMS and manifest.
///
/// The checks, in order, each reported under its name as ok or MISMATCH: sha256sums-signature
/// (with --keyring: SHA256SUMS.gpg by a key of the keyring, checked by gpgv), sha256sums (the
/// image's line), manifest-hash, then format (a bare SquashFS) or dm-verity and signature (a
/// DDI: the hash tree recomputed, the signature checked with --cert, "present, unchecked"
/// without), then, reading the image without mounting it, layout (the build's rules), entries
/// (every entry against the manifest) and extension-release. What each one checks:
/// docs/verifying.md, "verify: every entry without mounting". The image is opened once and
/// every check reads that open file.
///
/// Without --sums, SHA256SUMS next to the image is used if it exists; without --manifest,
/// IMAGE with `.raw` replaced by `.manifest.json` is used if it exists. At least one of the two
/// must be found: an image checked against nothing is not verified.
///
/// A published version is immutable (`build` refuses to publish other bytes under a name a feed
/// already has): an image whose sha256 differs from its SHA256SUMS line or manifest is never a
/// legitimate update of that version. Treat it as corrupted or tampered with.
///
/// Exit status: 0 verified, 1 mismatch (the first differences are named), 2 usage or I/O error.
///
/// Examples:
///   sysext-assembler verify keepalived-v2.3.4-x86-64.raw
///   sysext-assembler verify --sums SHA256SUMS --manifest keepalived-v2.3.4-x86-64.manifest.json \
///       /opt/extensions/keepalived/keepalived-v2.3.4-x86-64.raw
///   sysext-assembler verify --keyring feed.gpg --cert keepalived-verity.crt \
///       keepalived-v2.3.4-x86-64.raw
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image to check.
    image: PathBuf,
    /// SHA256SUMS listing the image [default: SHA256SUMS next to the image, if present].
    #[arg(long, value_name = "FILE")]
    sums: Option<PathBuf>,
    /// The image's manifest [default: IMAGE with .raw replaced by .manifest.json, if present].
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// For a DDI: the X.509 certificate (PEM) whose key must have signed its root hash, as
    /// systemd checks it against /etc/verity.d/. Without it a signature is only checked against
    /// the manifest's certificate fingerprint.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The feed's OpenPGP keyring, binary, as systemd-sysupdate reads
    /// /etc/systemd/import-pubring.gpg (`gpg --export KEYID > FILE`): SHA256SUMS.gpg, next to
    /// SHA256SUMS, must be a signature of SHA256SUMS by one of its keys (checked by gpgv, first).
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// How many differences are listed before the rest are only counted.
const SHOWN_DIFFERENCES: usize = 20;

pub fn run(args: &Args) -> Result<ExitCode> {
    let outcome = verify(
        &args.image,
        args.sums.as_deref(),
        args.manifest.as_deref(),
        args.cert.as_deref(),
        args.keyring.as_deref(),
    )?;
    if args.json {
        print_json(&args.image, &outcome)?;
    } else {
        print_text(&args.image, &outcome);
    }
    Ok(if outcome.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_text(image: &Path, outcome: &Outcome) {
    for check in &outcome.checks {
        if check.problems.is_empty() {
            println!("ok        {}: {}", check.name, check.detail);
            continue;
        }
        println!("MISMATCH  {}: {}", check.name, check.detail);
        for problem in check.problems.iter().take(SHOWN_DIFFERENCES) {
            println!("          {problem}");
        }
        if check.problems.len() > SHOWN_DIFFERENCES {
            println!(
                "          ... and {} more",
                check.problems.len() - SHOWN_DIFFERENCES
            );
        }
    }
    if outcome.sums.is_none() {
        println!("note      no SHA256SUMS given or found next to the image: not checked");
    }
    if outcome.manifest.is_none() {
        println!("note      no manifest given or found next to the image: entries not checked against one");
    }
    if outcome.verified() {
        println!("verified: {} (sha256 {})", image.display(), outcome.sha256);
    } else {
        println!(
            "NOT VERIFIED: {} does not match; do not deploy it",
            image.display()
        );
    }
}

fn print_json(image: &Path, outcome: &Outcome) -> Result<()> {
    let value = json!({
        "image": image.display().to_string(),
        "sha256": outcome.sha256,
        "sums": outcome.sums.as_ref().map(|p| p.display().to_string()),
        "manifest": outcome.manifest.as_ref().map(|p| p.display().to_string()),
        "verified": outcome.verified(),
        "checks": outcome.checks.iter().map(|c| json!({
            "name": c.name,
            "ok": c.problems.is_empty(),
            "detail": c.detail,
            "problems": c.problems,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
