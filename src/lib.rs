//! Library core of `sysext-assembler`: turns a staged payload into a bit-reproducible
//! systemd-sysext SquashFS image, and reads such images back to verify, inspect and compare them.
//! The binary in `main.rs` is a thin front end; each command is a module under `commands`.

pub mod commands;
pub mod manifest;
