# The development shell: the Rust toolchain nixpkgs pins, the tools the tests drive (the Debian
# CI installs the same tools from apt, see .ci/run), and the Nix formatter and linter.
{ mkShell
, cargo
, rustc
, clippy
, rustfmt
, squashfsTools
, util-linux
, strace
, gnupg
, python3
, qemu
, iproute2
, tcpdump
, binutils-unwrapped
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
    util-linux
    strace
    gnupg
    (python3.withPackages (ps: [ ps.pyyaml ]))
    qemu
    iproute2
    tcpdump
    binutils-unwrapped
    nixpkgs-fmt
    deadnix
  ];
}
