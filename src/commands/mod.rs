//! One module per subcommand. Each exposes a clap `Args` struct and `run`, which returns the
//! process exit code (errors become exit status 2 in `main`).

pub mod build;
pub mod butane;
pub mod diff;
pub mod inspect;
pub mod sign;
pub mod verify;
