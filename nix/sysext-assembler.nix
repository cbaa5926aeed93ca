# sysext-assembler, built from Cargo.lock (no vendor hash to keep in sync), with its test suite
# run in the sandbox. Tests that need root (systemd-sysext merges) are named root_* by project
# convention and skipped here; tests/run runs them as root outside Nix.
{ lib
, rustPlatform
, squashfsTools
, util-linux
, gnupg
, python3
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

  # The tests check the tool against independent implementations: unsquashfs and mksquashfs
  # (squashfsTools), taskset for the one-core determinism run (util-linux), gpg for the Butane
  # config's signing key, PyYAML for parsing the Butane output.
  nativeCheckInputs = [
    squashfsTools
    util-linux
    gnupg
    (python3.withPackages (ps: [ ps.pyyaml ]))
  ];
  checkFlags = [ "--skip=root_" ];

  meta = {
    inherit (cargoToml.package) description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "sysext-assembler";
  };
}
