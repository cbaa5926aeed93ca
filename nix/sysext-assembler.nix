# sysext-assembler, built from Cargo.lock (no vendor hash to keep in sync), with its test suite
# run in the sandbox. Tests that need root (systemd-sysext merges) are named root_* by project
# convention and skipped here; tests/run runs them as root outside Nix.
{ lib
, rustPlatform
, squashfsTools
, util-linux
, src
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  inherit (cargoToml.package) version;
  inherit src;

  cargoLock.lockFile = ../Cargo.lock;

  # unsquashfs: the tests check images against an independent reader; taskset (util-linux): the
  # determinism test builds on one core and on all to show the core count does not matter.
  nativeCheckInputs = [ squashfsTools util-linux ];
  checkFlags = [ "--skip=root_" ];

  meta = {
    inherit (cargoToml.package) description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "sysext-assembler";
  };
}
