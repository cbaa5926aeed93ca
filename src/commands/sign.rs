//! `sysext-assembler sign`: adds the root-verity-sig partition to a DDI that `build --format
//! ddi` wrote, as a step of its own so the key never enters the (Nix) build. The image's hash
//! tree is checked against its data before anything is signed; the signed image, its manifest
//! and its SHA256SUMS line replace the unsigned ones atomically ([`sysext_assembler::feed::sign`],
//! with the signature from [`sysext_assembler::trust::signing`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use sysext_assembler::feed::sign;

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
    let written = sign::sign(&args.image, &args.key, &args.cert)?;
    if written.is_empty() {
        eprintln!(
            "{} is already signed with this key; nothing to do",
            args.image.display()
        );
    }
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
