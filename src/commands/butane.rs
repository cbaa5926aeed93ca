//! `sysext-assembler butane` (not implemented yet).

use std::process::ExitCode;

/// Placeholder until the command is implemented.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("'butane' is not implemented yet")
}
