# The files the Rust crate is built and tested from, and nothing else: editing the README, the
# Nix files or the payload does not rebuild the assembler. Optional parts are listed only when
# present, since a file set may not name a missing path. .cargo/config.toml carries the C flags
# the vendored liblzma is built with (it says why); cargoSetupHook's own config goes one directory
# up, so Cargo reads both.
{ lib }:

lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.unions (
    [ ../Cargo.toml ../Cargo.lock ../.cargo/config.toml ../src ]
    ++ builtins.filter builtins.pathExists [
      ../tests
      ../benches
      ../rustfmt.toml
      ../clippy.toml
    ]
  );
}
