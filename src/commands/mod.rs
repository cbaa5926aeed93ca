//! One module per subcommand. Each exposes a clap `Args` struct and `run`, which returns the
//! process exit code (errors become exit status 2 in `main`).

pub(crate) mod build;
pub(crate) mod butane;
pub(crate) mod diff;
pub(crate) mod inspect;
pub(crate) mod sign;
pub(crate) mod verify;
