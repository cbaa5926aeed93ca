//! Library core of `sysext-assembler`: turns a staged payload into a bit-reproducible
//! systemd-sysext SquashFS image, and reads such images back to verify, inspect and compare them.
//! The binary in `main.rs` is a thin front end; each command is a module under `commands`.

pub mod base64;
pub mod commands;
pub mod compress;
pub mod ddi;
pub mod extension_release;
pub mod file_hash;
pub mod gpt;
pub mod ignition;
pub mod image;
pub mod image_reader;
pub mod listing;
pub mod manifest;
pub mod names;
pub mod openpgp;
pub mod output;
pub mod payload;
pub mod provisioning;
pub mod published;
pub mod signing;
pub mod sums;
pub mod sysupdate;
pub mod trust;
pub mod verity;

/// Lowercase hex, as in SHA256SUMS and the manifest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
