//! `sysext-assembler inspect`: what an image holds, read without mounting it: the superblock,
//! every entry like `unsquashfs -lls`, and the extension-release fields, as
//! [`sysext_assembler::image_reader::report`] builds it; this module prints it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use sysext_assembler::image_reader::report::Report;

/// List an image's entries and extension-release fields.
///
/// Reads the image through a bounded SquashFS reader (no mount, no root). Each entry line shows
/// type and mode, uid/gid, size, mtime (UTC) and path, like `unsquashfs -lln`.
///
/// Example:
///   sysext-assembler inspect keepalived-v2.3.4-x86-64.raw
///   sysext-assembler inspect --json keepalived-v2.3.4-x86-64.raw | jq '.entries[].path'
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image to read: a SquashFS, or a DDI (its partitions are listed too).
    image: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let report = Report::read(&args.image)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}
