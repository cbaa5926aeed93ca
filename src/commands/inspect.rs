//! `sysext-assembler inspect` (not implemented yet).

use std::process::ExitCode;

/// Placeholder until the command is implemented.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("'inspect' is not implemented yet")
}
