# sysext-assembler, built from Cargo.lock (no vendor hash to keep in sync), with its test suite
# run in the sandbox. Two kinds of test cannot run there and are skipped by exact name (libtest's
# --exact makes --skip compare whole names, so no other test is skipped by accident):
#   root_*          need root (systemd-sysext merges, device nodes, foreign owners)
#   chmod_setuid_*  set setuid/setgid bits, which the sandbox's seccomp filter refuses (EPERM)
# tests/run runs both as root outside Nix; tests/nix/check requires this list to name exactly the
# tests with those prefixes, and tests/nix/sandbox runs the check phase in Nix's real sandbox.
{ lib
, rustPlatform
, squashfsTools
, util-linux
, strace
, gnupg
, python3
, cryptsetup
, openssl
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
  # (squashfsTools); from util-linux, taskset for the one-core determinism run and sfdisk to read
  # a DDI's partition table; strace to kill a build at each rename and fsync (tests/crash.rs);
  # gpg for the Butane config's signing key and the feed's test keys, and gpgv (also gnupg's),
  # which `verify --keyring` runs; PyYAML for parsing the Butane output; veritysetup
  # (cryptsetup's default output) to check a DDI's dm-verity hash tree; openssl (its default
  # output, bin) for the test keys and to check signatures, and which `sign` itself runs
  # (tests/ddi.rs).
  nativeCheckInputs = [
    squashfsTools
    util-linux
    strace
    gnupg
    (python3.withPackages (ps: [ ps.pyyaml ]))
    cryptsetup
    openssl
  ];
  checkFlags = [ "--exact" ] ++ lib.concatMap (test: [ "--skip" test ]) [
    "root_inspect_agrees_with_unsquashfs_on_a_foreign_image"
    "root_systemd_sysext_merges_image"
    "root_device_nodes_are_refused"
    "root_determinism_ignores_owners"
    "root_kernel_reads_bcj_filtered_images"
    "chmod_setuid_setuid_and_setgid_are_refused"
  ];

  meta = {
    inherit (cargoToml.package) description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "sysext-assembler";
  };
}
