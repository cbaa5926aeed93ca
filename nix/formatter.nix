# `nix fmt`: nixpkgs-fmt over the whole repository. Nix 2.25 and later start the formatter with
# no arguments (and PRJ_ROOT set to the flake's root); nixpkgs-fmt given no path formats standard
# input, so `nix fmt` would wait forever. Without arguments this formats the flake's tree;
# with arguments (older Nix passes ".") it passes them on.
#
# nixpkgs-fmt is archived upstream but still packaged (pkgs/by-name/ni/nixpkgs-fmt, 1.3.0; see
# nix/NIXPKGS-ATTRIBUTES.md). nixfmt, nixpkgs' own style, would be the successor, but no nixfmt
# can be installed where tests/nix/check runs, and that check must run the same formatter at the
# same version as nix/check-nix-format.nix.
{ writeShellApplication
, nixpkgs-fmt
}:

writeShellApplication {
  name = "nixpkgs-fmt-tree";
  runtimeInputs = [ nixpkgs-fmt ];
  text = ''
    if [ "$#" -eq 0 ]; then
      set -- "''${PRJ_ROOT:-.}"
    fi
    exec nixpkgs-fmt "$@"
  '';
}
