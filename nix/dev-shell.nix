# The development shell: everything the assembler's build and tests take (inputsFrom: the Rust
# build hooks and the nativeCheckInputs, among them cryptsetup's veritysetup, openssl, sfdisk,
# unsquashfs, strace, gpg and PyYAML, which tests/ddi.rs and the other tests call), the tools the
# system tests drive (the Debian CI installs the same tools from apt, see .ci/run), and the Nix
# formatter and linter.
{ mkShell
, sysext-assembler
, cargo
, rustc
, clippy
, rustfmt
, qemu
, iproute2
, tcpdump
, binutils-unwrapped
, nixpkgs-fmt
, deadnix
}:

mkShell {
  # mkShell takes the derivations' inputs, never the derivations themselves: the shell builds
  # the assembler with cargo rather than carrying the Nix-built one.
  inputsFrom = [ sysext-assembler ];
  packages = [
    cargo
    rustc
    clippy
    rustfmt
    qemu
    iproute2
    tcpdump
    binutils-unwrapped
    nixpkgs-fmt
    deadnix
  ];
}
