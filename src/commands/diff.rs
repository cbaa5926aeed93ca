//! `sysext-assembler diff`: the command line of [`sysext_assembler::diff`], which says what
//! differs between two images, read without mounting them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use sysext_assembler::diff::compare;
use sysext_assembler::image_reader::Image;

/// Show what differs between two images.
///
/// Lists entries added, removed or changed (content, mode, owner, mtime, symlink target), then
/// for DDIs the differing fields of the disk image around the file system, then differing
/// superblock fields, and, when all entries match but the files do not, which tables or areas
/// of the files differ. No mount, no root.
///
/// Exit status: 0 when the files are byte-identical, 1 when they differ, 2 on errors.
///
/// Example:
///   sysext-assembler diff out-a/keepalived-v2.3.4-x86-64.raw out-b/keepalived-v2.3.4-x86-64.raw
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The first image ("a").
    a: PathBuf,
    /// The second image ("b").
    b: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let a = Image::open(&args.a)?;
    let b = Image::open(&args.b)?;
    let report = compare(&a, &args.a, &b, &args.b)?;
    print!("{}", report.text);
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
