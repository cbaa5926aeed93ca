//! `sysext-assembler butane`: the provisioning config for a Flatcar machine that runs an image
//! from a feed, as a Butane config (variant flatcar, version 1.0.0) or, with `--ignition`, as the
//! Ignition config (spec 3.3.0) Butane makes of it. What the node gets is described once in
//! [`sysext_assembler::provisioning`], which writes it as YAML (`provisioning::butane`) or JSON
//! (`provisioning::ignition`), from the inputs `provisioning::inputs` reads and checks; this
//! module parses the arguments and prints the result.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use sysext_assembler::feed::manifest::Manifest;
use sysext_assembler::provisioning::{self, butane, describe, ignition, inputs, IMPORT_PUBRING};
use sysext_assembler::trust::policy::DEFAULT_POLICY;

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

pub fn run(args: &Args) -> Result<ExitCode> {
    let text = fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read the manifest {}", args.manifest.display()))?;
    let manifest = Manifest::from_json(&text)
        .with_context(|| format!("{} is not a valid manifest", args.manifest.display()))?;
    let config = match &args.config {
        Some(path) => Some(inputs::read_config(path)?),
        None => None,
    };
    let key = match &args.signing_key {
        Some(path) => Some(inputs::read_signing_key(path)?),
        None => None,
    };
    let trust = match &args.image_policy {
        Some(policy) => Some(inputs::read_trust(&args.verity_certificate, policy)?),
        None => None,
    };
    if let Some(trust) = &trust {
        provisioning::check_trust_fits(&manifest, &args.manifest, trust)?;
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
        butane::render(&node)
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
