# The files the Rust crate is built and tested from, and nothing else: editing the README, the
# Nix files or the payload does not rebuild the assembler. Optional parts are listed only when
# present, since a file set may not name a missing path.
{ lib }:

lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.unions (
    [ ../Cargo.toml ../Cargo.lock ../src ]
    ++ builtins.filter builtins.pathExists [
      ../tests
      ../benches
      ../rustfmt.toml
      ../clippy.toml
    ]
  );
}
