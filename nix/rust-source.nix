# The files the Rust crate is built and tested from, and nothing else: editing the README, the
# Nix files or the payload does not rebuild the assembler.
{ lib }:

lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.unions [
    ../Cargo.toml
    ../Cargo.lock
    ../src
    (lib.fileset.maybeMissing ../tests)
    (lib.fileset.maybeMissing ../benches)
    (lib.fileset.maybeMissing ../rustfmt.toml)
    (lib.fileset.maybeMissing ../clippy.toml)
  ];
}
