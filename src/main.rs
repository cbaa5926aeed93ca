//! `sysext-assembler`: a thin command-line front end over the library. It parses arguments and
//! dispatches; every command lives in its own module under `commands`, which parses that
//! command's arguments, calls the library and prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// Build, verify and compare reproducible systemd-sysext images.
///
/// Exit status: 0 on success, 1 when `verify` finds a mismatch or `diff` a difference, 2 on bad
/// input or I/O errors.
#[derive(Parser)]
#[command(name = "sysext-assembler", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    Build(commands::build::Args),
    Sign(commands::sign::Args),
    Verify(commands::verify::Args),
    Inspect(commands::inspect::Args),
    Diff(commands::diff::Args),
    Butane(commands::butane::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Sign(args) => commands::sign::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Butane(args) => commands::butane::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sysext-assembler: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
