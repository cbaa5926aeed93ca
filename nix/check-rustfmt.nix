# rustfmt --check over the crate, with the toolchain nixpkgs pins (the same rustfmt CI runs
# outside Nix may be newer; both must agree the tree is formatted).
{ runCommand
, cargo
, rustfmt
, src
}:

runCommand "sysext-assembler-rustfmt"
{
  nativeBuildInputs = [ cargo rustfmt ];
} ''
  cd ${src}
  cargo fmt --all --check
  touch "$out"
''
