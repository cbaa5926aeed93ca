# Renders the shell scripts of the flake's runCommand derivations (nix/sysext-image.nix,
# nix/release.nix, nix/check-reproducible.nix, nix/check-static-binary.nix) for inputs on this
# machine, so tests/nix/scripts can run them with the real assembler, readelf and qemu-user,
# without Nix being able to build anything here.
#
# `runCommand` is replaced by a function returning the script and its passthru; the few lib
# functions the files use are given with nixpkgs' definitions (lib/strings.nix, lib/lists.nix).
# Store paths become the directories named in `inputs` (a JSON file written by tests/nix/scripts).
{ inputs }:

let
  given = builtins.fromJSON (builtins.readFile inputs);

  lib = {
    # lib/strings.nix, as nixpkgs defines them
    inherit (import ./lib-strings.nix) escapeShellArg escapeShellArgs concatMapStrings removeSuffix;
    # lib/lists.nix
    inherit (builtins) concatMap attrNames;
  };

  # A derivation stand-in: what the script interpolates is its outPath.
  runCommand = _name: env: script: (env.passthru or { }) // { inherit script; };

  data = builtins.fromJSON (builtins.readFile ../../nix/keepalived.json);
  release = data.versions.${data.default};

  keepalivedFor = arch: {
    outPath = given.keepalived.${arch};
    version = data.default;
  };

  imageFor = arch: import ../../nix/sysext-image.nix {
    inherit lib runCommand arch;
    sysext-assembler = null; # on PATH when tests/nix/scripts runs the script
    keepalived = keepalivedFor arch;
    payload = given.payload;
    epoch = release.sourceDateEpoch;
    updateUrl = "https://keepalived-sysext.invalid/releases";
    provenance = {
      keepalived-source-hash = release.src.hash;
      flake-rev = "none (tests/nix/scripts)";
    };
  };

  # The built image directory, where the script that made it put it.
  builtImage = arch: imageFor arch // { outPath = given.images.${arch}; };

  staticCheck = arch: binary: configureFlags: (import ../../nix/check-static-binary.nix {
    inherit lib runCommand arch configureFlags;
    binutils-unwrapped = null;
    keepalived = { outPath = binary; version = data.default; };
    emulator = given.emulators.${arch};
  }).script;
in
{
  image = builtins.mapAttrs (arch: _: (imageFor arch).script) given.keepalived;

  reproducible = builtins.mapAttrs
    (arch: _: (import ../../nix/check-reproducible.nix {
      inherit lib runCommand;
      sysext-assembler = null;
      image = builtImage arch;
    }).script)
    given.images;

  release = (import ../../nix/release.nix {
    inherit lib runCommand;
    sysext-assembler = null;
    images = map builtImage (builtins.attrNames given.images);
  }).script;

  static = builtins.mapAttrs
    (_: case: staticCheck case.arch case.binary case.configureFlags)
    given.staticCases;
}
