# The development shell: the Rust toolchain nixpkgs pins, the tools the tests drive (Debian's
# test run uses the same tools from apt), and the Nix formatter and linter.
{ mkShell
, cargo
, rustc
, clippy
, rustfmt
, squashfsTools
, qemu
, iproute2
, tcpdump
, binutils-unwrapped
, python3
, nixpkgs-fmt
, deadnix
}:

mkShell {
  packages = [
    cargo
    rustc
    clippy
    rustfmt
    squashfsTools
    qemu
    iproute2
    tcpdump
    binutils-unwrapped
    python3
    nixpkgs-fmt
    deadnix
  ];
}
