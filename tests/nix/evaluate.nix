# Evaluates every package, check and dev shell of flake.nix against a stand-in nixpkgs, deeply,
# and returns what each would build: the arguments each nix/*.nix file hands to mkDerivation,
# buildRustPackage, runCommand, runNixOSTest or mkShell. Nix cannot fetch nixpkgs here, so this is
# how tests/nix/check catches, offline, what only a real evaluation would: a nix/*.nix file called
# with an argument it does not take or without one it needs (callPackage below fails exactly as
# nixpkgs' does), a misspelt attribute, a type error in an interpolation, a Python syntax error in
# the VM test script (tests/nix/check compiles it).
#
# The stand-ins are deliberately dumb: every package is an attribute set with a fake store path,
# builders return their arguments. They say nothing about whether nixpkgs has an attribute (see
# nix/NIXPKGS-ATTRIBUTES.md) or whether a build succeeds.
let
  flake = import ../../flake.nix;

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  fakePackage = name: { inherit name; outPath = fakePath name; };

  lib = rec {
    inherit (builtins) mapAttrs listToAttrs concatMap replaceStrings concatStringsSep attrNames;
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    optionals = condition: list: if condition then list else [ ];
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    # lib/strings.nix, as nixpkgs defines them
    inherit (import ./lib-strings.nix) escapeShellArg escapeShellArgs concatMapStrings removeSuffix optionalString
      hasPrefix hasSuffix removePrefix splitString;
    inherit (import ./lib-asserts.nix) assertOneOf;
    mkForce = value: { _type = "override"; priority = 50; content = value; };
    licenses = { gpl2Plus = "gpl2Plus"; mit = "mit"; asl20 = "asl20"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    fileset = {
      unions = paths: map (path: assert builtins.isFunction path || builtins.pathExists path; path) paths;
      # A file set of the path when it exists, else of nothing (here: a predicate matching nothing).
      maybeMissing = path: assert builtins.isPath path; if builtins.pathExists path then path else _path: _type: false;
      fileFilter = keep: root: assert builtins.isFunction keep && builtins.pathExists root; _path: _type: true;
      # Forces every element, as nixpkgs' coercion does: a missing path fails the evaluation.
      toSource = { root, fileset }: assert builtins.isPath root; assert builtins.isList fileset;
        builtins.deepSeq fileset (fakePath "source");
    };
    sources.sourceFilesBySuffices = path: suffixes: assert builtins.isPath path; assert builtins.isList suffixes; fakePath "nix-files";
  };

  # callPackage with nixpkgs' argument rules: formals come from the package set unless given, a
  # formal with a default may be absent, anything not a formal is an error (unless the file
  # takes `...`).
  callPackageWith = pkgs: file: given:
    let
      function = import file;
      formals = builtins.functionArgs function;
      fromPkgs = builtins.intersectAttrs formals pkgs;
      missing = builtins.filter
        (name: !(formals.${name}) && !(given ? ${name}) && !(fromPkgs ? ${name}))
        (attrNames formals);
      attrNames = builtins.attrNames;
    in
    if missing != [ ]
    then throw "${toString file}: no value for ${builtins.concatStringsSep ", " missing}"
    else function (fromPkgs // given);

  # Like mkDerivation, lift passthru onto the result.
  builder = kind: attrs: attrs // (attrs.passthru or { }) // {
    __builder = kind;
    outPath = fakePath (attrs.pname or attrs.name or kind);
  };

  packageSet = { system, hostArch, buildSystem }:
    let
      pkgs = {
        inherit lib;
        callPackage = callPackageWith pkgs;
        stdenv = {
          # As make-derivation.nix does for a cross build: the build and host platforms are
          # appended to configureFlags, so a flake that records configureFlags records the
          # build machine (tests/nix/check's provenance check compares the two systems).
          # Takes attributes or, as nixpkgs' does, a function of the final attributes (finalAttrs).
          mkDerivation = attrsOrFunction:
            let
              attrs = if builtins.isFunction attrsOrFunction then attrsOrFunction attrs else attrsOrFunction;
            in
            builder "mkDerivation" (attrs // {
              configureFlags = (attrs.configureFlags or [ ]) ++ [ "--build=${buildSystem}" "--host=${system}" ];
            });
          hostPlatform = {
            inherit system;
            emulator = buildPackages: assert buildPackages ? callPackage; "${fakePath "qemu"}/bin/qemu-${hostArch}";
          };
        };
        rustPlatform.buildRustPackage = builder "buildRustPackage";
        runCommand = name: env: script: builder "runCommand" (env // { inherit name script; });
        mkShell = builder "mkShell";
        writeShellApplication = builder "writeShellApplication";
        testers.runNixOSTest = test: test // { __builder = "runNixOSTest"; outPath = fakePath test.name; };
        fetchurl = args: assert args ? hash && args ? url; fakePackage args.name;
        fetchFromGitHub = args: assert args ? hash && args ? rev && args ? owner && args ? repo; fakePackage args.name;
        buildPackages = pkgs;
        # overrideAttrs as nixpkgs' derivations have it: the function gets the old attributes
        # (nixpkgs' openssl has a configureFlags list) and the result carries the new ones; its
        # name lists them, so tests/nix/check's openssl check can see them.
        openssl = fakePackage "openssl" // {
          overrideAttrs = f:
            let new = f { configureFlags = [ "no-shared" ]; };
            in fakePackage "openssl-${lib.concatStringsSep "-" new.configureFlags}" // new;
        };
        python3 = fakePackage "python3" // {
          withPackages = select:
            assert builtins.isList (select { pyyaml = fakePackage "pyyaml"; });
            fakePackage "python3-with-packages";
        };
      }
      // lib.genAttrs [
        "autoreconfHook"
        "pkg-config"
        "libnl"
        "libmnl"
        "libnftnl"
        "squashfsTools"
        "util-linux"
        "strace"
        "clippy"
        "cargo"
        "rustc"
        "rustfmt"
        "nixpkgs-fmt"
        "deadnix"
        "qemu"
        "iproute2"
        "tcpdump"
        "binutils-unwrapped"
        "gnupg"
        "cryptsetup"
      ]
        fakePackage;
    in
    pkgs;

  legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system:
    packageSet { inherit system; hostArch = "build"; buildSystem = system; } // {
      pkgsCross = {
        musl64.pkgsStatic = packageSet { system = "x86_64-linux"; hostArch = "x86_64"; buildSystem = system; };
        aarch64-multiplatform-musl.pkgsStatic = packageSet { system = "aarch64-linux"; hostArch = "aarch64"; buildSystem = system; };
      };
    });

  nixpkgs = {
    inherit lib legacyPackages;
    rev = "0000000000000000000000000000000000000000";
  };

  outputs = flake.outputs { self = outputs; inherit nixpkgs; };

  # What a derivation stand-in would build, without its fake store path or derivation values
  # nested in it (those are summarised by name).
  summarise = value:
    if builtins.isAttrs value then
      (if value ? outPath && !(value ? __builder) then "<${value.name or "path"}>"
      else builtins.mapAttrs (_: summarise) (builtins.removeAttrs value [ "outPath" "override" ]))
    else if builtins.isList value then map summarise value
    else if builtins.isFunction value then "<function>"
    else if builtins.isPath value then "<path ${baseNameOf value}>"
    else value;

  nodeConfig = test: builtins.mapAttrs (_: node: summarise node) test.nodes;
in
builtins.mapAttrs
  (_: perSystem: {
    packages = builtins.mapAttrs (_: summarise) perSystem.packages;
    checks = builtins.mapAttrs
      (_: check: if check.__builder == "runNixOSTest" then summarise (check // { nodes = nodeConfig check; }) else summarise check)
      perSystem.checks;
    devShells = builtins.mapAttrs (_: summarise) perSystem.devShells;
  })
  (builtins.mapAttrs
    (system: _: {
      packages = outputs.packages.${system};
      checks = outputs.checks.${system};
      devShells = outputs.devShells.${system};
    })
    outputs.packages)
