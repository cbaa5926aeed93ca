# Evaluates flake.nix's outputs function without nixpkgs (no network here) and returns the names
# of every output, so tests/nix/check can compare them with the list issue 3 requires.
#
# Sound because of laziness: listing attribute names forces only the structure of the outputs,
# which flake.nix builds from builtins-equivalent lib functions (given here with nixpkgs'
# semantics) and nix/keepalived.json. Package values are never forced, so the stub package sets
# are never consulted; any other use of lib or pkgs while naming outputs fails this evaluation.
let
  flake = import ../../flake.nix;

  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    inherit (builtins) mapAttrs listToAttrs concatMap replaceStrings concatStringsSep;
  };

  nixpkgs = {
    inherit lib;
    rev = "0000000000000000000000000000000000000000";
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
      (system: throw "tests/nix/outputs.nix: naming the outputs for ${system} forced a package");
  };

  outputs = flake.outputs { self = outputs; inherit nixpkgs; };
in
{
  inherit (flake) description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  inputs = builtins.attrNames flake.inputs;
  outputs = builtins.mapAttrs
    (_: perSystem: builtins.mapAttrs
      (_: value: if builtins.isAttrs value then builtins.attrNames value else "<value>")
      perSystem)
    {
      inherit (outputs) packages checks devShells;
    } // {
    formatter = builtins.mapAttrs (_: _: "<value>") outputs.formatter;
    # hydraJobs.JOB.SYSTEM for the images and the release (the systems are listed, the
    # derivations never forced), hydraJobs.checks.SYSTEM.NAME for the checks.
    hydraJobs = builtins.mapAttrs
      (job: bySystem:
        if job == "checks"
        then builtins.mapAttrs (_: builtins.attrNames) bySystem
        else builtins.attrNames bySystem)
      outputs.hydraJobs;
  };
}
