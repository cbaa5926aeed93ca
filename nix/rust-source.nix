# The files the Rust crate is built and tested from, and nothing else: editing the README, the
# Nix files, the payload or a test harness (tests/nix, tests/e2e, tests/system, tests/docs/check,
# tests/run) does not rebuild the assembler, and with it every image. Of tests/ only Rust files are taken:
# the integration tests, their support module and the docs target Cargo.toml declares.
# Optional parts go through lib.fileset.maybeMissing: a file set may not name a missing path, and
# maybeMissing turns one into the empty file set.
# .cargo/config.toml carries the C flags the vendored liblzma is built with (it says why);
# cargoSetupHook's own config goes one directory up, so Cargo reads both.
{ lib }:

lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.unions (
    [
      ../Cargo.toml
      ../Cargo.lock
      ../.cargo/config.toml
      ../src
      (lib.fileset.fileFilter (file: file.hasExt "rs") ../tests)
    ]
    ++ map lib.fileset.maybeMissing [
      ../benches
      ../rustfmt.toml
      ../clippy.toml
    ]
  );
}
