//! What verifying reports: one [`Check`] per thing checked, in the order they ran, and the
//! [`Outcome`] that holds them. A module of its own so that the checks in `disk` and `contents`
//! and the steps in `mod.rs` build the same type without reaching into their parent.

use std::path::PathBuf;

/// One check and how it went.
pub struct Check {
    pub name: &'static str,
    /// Empty when the check passed; otherwise what differs, first difference first.
    pub problems: Vec<String>,
    /// What was checked, for the report.
    pub detail: String,
}

/// The outcome of verifying one image.
pub struct Outcome {
    pub sha256: String,
    pub sums: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn verified(&self) -> bool {
        self.checks.iter().all(|c| c.problems.is_empty())
    }
}
