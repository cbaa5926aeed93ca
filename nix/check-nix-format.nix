# Every Nix file in the repository is formatted by the flake's formatter and has no dead code
# (unused bindings or arguments), as tests/nix/check also checks outside Nix.
{ runCommand
, nixpkgs-fmt
, deadnix
, src
}:

runCommand "nix-format"
{
  nativeBuildInputs = [ nixpkgs-fmt deadnix ];
} ''
  cd ${src}
  nixpkgs-fmt --check .
  deadnix --fail .
  touch "$out"
''
