# cargo clippy over every target (lib, bin, tests, benches) with warnings as errors, against the
# same Cargo.lock-vendored dependencies the package builds with.
{ rustPlatform
, clippy
, src
}:

rustPlatform.buildRustPackage {
  pname = "sysext-assembler-clippy";
  version = "0";
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;

  # cargo-auditable's cargo wrapper drives rustc through RUSTC_WORKSPACE_WRAPPER, the variable
  # cargo clippy uses to run clippy-driver; without the wrapper clippy is the one that runs.
  auditable = false;
  nativeBuildInputs = [ clippy ];
  buildPhase = ''
    runHook preBuild
    cargo clippy --all-targets --offline -- -D warnings
    runHook postBuild
  '';
  doCheck = false;
  installPhase = ''
    touch "$out"
  '';
}
