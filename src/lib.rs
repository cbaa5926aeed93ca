//! Library of `sysext-assembler`: turns a staged payload into a bit-reproducible systemd-sysext
//! image (a SquashFS, or a signed dm-verity Discoverable Disk Image) with the files a feed
//! publishes next to it, and reads such images back to verify, inspect and compare them. The
//! binary (`main.rs` and `commands/`) parses arguments, calls this library and prints.
//!
//! The modules, in the order data flows through them:
//!
//! - [`names`]: the extension NAME, VERSION and architecture, checked once, and the output file
//!   names built from them. Every other module may use it.
//! - [`payload`]: the usr/ and opt/ tree collected from the inputs, normalised, with the layout
//!   rules and the extension-release file.
//! - [`squashfs`]: the payload written as a SquashFS image whose bytes depend on nothing else,
//!   with the compressor choice and the parallel block compression.
//! - [`disk`]: the SquashFS wrapped as a DDI: GUID partition table, dm-verity hash tree, the
//!   signature partition.
//! - [`trust`]: certificates, the image policy, signing the root hash and checking signatures
//!   (dm-verity's PKCS#7 and the feed's OpenPGP).
//! - [`feed`]: what is published next to the image (manifest, `SHA256SUMS`, sysupdate transfer
//!   file), written crash-safely, and never changed once published.
//! - [`provisioning`]: what a Flatcar node needs to run an image from a feed, as a Butane or an
//!   Ignition config.
//! - [`image_reader`]: reading images that may be hostile, without mounting them, and showing
//!   their entries.
//! - [`diff`]: what differs between two images, entries first, down to the areas of the files.
//! - [`verify`]: an image checked against its feed: `SHA256SUMS`, manifest, hash tree,
//!   signature, entries, extension-release and the build's rules.
//!
//! Dependencies run one way: a module uses only those listed above it (the readers, at the end,
//! may use anything; nothing uses a reader), and nothing here uses the binary's commands:
//! `tests/module_graph.rs` checks both.
//!
//! One crate with module directories rather than a workspace with a library and a CLI crate: the
//! binary is thin and needs no dependency the library does not have, the library has no user
//! outside this repository (the tests, the fuzz targets), and one crate keeps one `Cargo.toml`,
//! one `Cargo.lock` and the single-package Nix build (`nix/sysext-assembler.nix`) whose check
//! phase runs the same `cargo test`. The commands are modules of the binary (`main.rs` declares
//! them), so the library cannot reach them.

pub mod diff;
pub mod disk;
pub mod feed;
pub mod image_reader;
pub mod names;
pub mod payload;
pub mod provisioning;
pub mod squashfs;
pub mod trust;
pub mod verify;

/// Lowercase hex, as in SHA256SUMS and the manifest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
