# Builds what the flake builds, in Nix's real build sandbox on this machine, without nixpkgs:
# every derivation here has `builder = "/bin/bash"` and reaches Debian's tools through the
# sandbox-paths tests/nix/sandbox passes (never through the network, the build machine's other
# files, root or a writable source). What stands in for nixpkgs is as small as possible:
#
#   buildRustPackage  nix/sysext-assembler.nix's own arguments (source, checkFlags) run through
#                     the phases nixpkgs' hooks run: cargoSetupHook's vendored-crates config one
#                     directory above the source, cargoBuildHook's and cargoCheckHook's command
#                     lines (release profile, --target, --offline, checkFlags after `--`)
#   runCommand        a derivation running the script with bash -euo pipefail in $NIX_BUILD_TOP,
#                     the nativeBuildInputs' bin directories first on PATH, as stdenv does
#   lib               nixpkgs' definitions of the few functions the nix/*.nix files use
#
# The image (SquashFS and DDI), release, reproducibility and static-binary derivations are
# nix/*.nix called as the flake calls them; only their inputs are local: the payload, the
# keepalived binaries that tests/e2e/build-keepalived builds from the same data file, the vendored
# crates. tests/nix/sandbox builds each attribute and checks that it succeeds or fails as it should.
{ inputs }:

let
  given = builtins.fromJSON (builtins.readFile inputs);
  inherit (builtins) currentSystem;

  lib = {
    inherit (import ./lib-strings.nix) escapeShellArg escapeShellArgs concatMapStrings removeSuffix optionalString;
    inherit (builtins) concatMap attrNames;
    inherit (import ./lib-asserts.nix) assertOneOf;
    optionals = condition: list: if condition then list else [ ];
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    fileset = import ./lib-fileset.nix;
    licenses = { mit = "mit"; asl20 = "asl20"; };
  };

  # A local directory as a store path, the way a flake input or `./files` enters the store.
  storeDir = name: path: builtins.path { inherit name path; };

  # Debian's tools come last on PATH, after the derivation's own inputs (the assembler);
  # veritysetup and sfdisk are in /usr/sbin there (nixpkgs puts them in bin/).
  hostPath = "/usr/bin:/bin:/usr/sbin";
  pathOf = inputs': builtins.concatStringsSep ":" (map (input: "${input}/bin") inputs' ++ [ hostPath ]);

  runCommand = name: env: script:
    let
      plainEnv = builtins.removeAttrs env [ "passthru" "meta" "nativeBuildInputs" ];
      built = derivation (plainEnv // {
        inherit name;
        system = currentSystem;
        builder = "/bin/bash";
        args = [ "-euo" "pipefail" "-c" "cd \"$NIX_BUILD_TOP\"\n${script}" ];
        PATH = pathOf (builtins.filter (input: input != null) (env.nativeBuildInputs or [ ]));
        # The Debian packages the script calls: a new version of one rebuilds it.
        hostTools = given.hostTools;
      });
    in
    built // (env.passthru or { });

  # What nixpkgs' Rust hooks run, in order (pkgs/build-support/rust/hooks): cargoSetupHook
  # (postUnpack: a copy of the vendored crates and a .cargo/config.toml in $NIX_BUILD_TOP, one
  # directory above the source), cargoBuildHook, cargoCheckHook (RUST_TEST_THREADS, checkFlags
  # after `--`), then the install of the release binary. The toolchain is the build machine's
  # rustup toolchain, mounted read-only at /rust; its version keys the derivation.
  rustPlatform.buildRustPackage = attrs:
    let
      target = given.rustTarget;
      profile = "release";
      script = ''
        cd "$NIX_BUILD_TOP"
        cores=''${NIX_BUILD_CORES:-0}
        if [ "$cores" -le 0 ]; then cores=$(nproc); fi
        cp -r --no-preserve=mode "$src" source
        cp -rL --no-preserve=mode "$cargoVendor" cargo-vendor-dir
        mkdir -p .cargo
        printf '%s\n' '[source.crates-io]' 'replace-with = "vendored-sources"' \
          '[source.vendored-sources]' "directory = \"$NIX_BUILD_TOP/cargo-vendor-dir\"" >> .cargo/config.toml
        cd source

        echo "cargoBuildHook"
        export CARGO_PROFILE_RELEASE_STRIP=false
        cargo build -j "$cores" --target ${target} --offline --profile ${profile}

        echo "cargoCheckHook"
        export RUST_TEST_THREADS=$cores
        cargo test -j "$cores" --profile ${profile} --target ${target} --offline -- ${lib.escapeShellArgs (attrs.checkFlags or [ ])}

        mkdir -p "$out/bin"
        cp target/${target}/${profile}/${attrs.pname} "$out/bin/"
      '';
    in
    derivation {
      name = "${attrs.pname}-${attrs.version}";
      system = currentSystem;
      builder = "/bin/bash";
      args = [ "-euo" "pipefail" "-c" script ];
      inherit (attrs) src;
      cargoVendor = storeDir "cargo-vendor" given.cargoVendor;
      PATH = "/rust/bin:${hostPath}";
      rustToolchain = given.rustToolchain;
      hostTools = given.hostTools;
    };

  callFile = file: args: import file ({ inherit lib; } // args);

  sysext-assembler = callFile ../../nix/sysext-assembler.nix {
    inherit rustPlatform;
    src = callFile ../../nix/rust-source.nix { };
    squashfsTools = null;
    util-linux = null;
    strace = null;
    gnupg = null;
    python3.withPackages = _: null;
    cryptsetup = null;
    openssl = null;
  };

  data = builtins.fromJSON (builtins.readFile ../../nix/keepalived.json);
  release = data.versions.${data.default};
  payload = storeDir "payload" given.payload;

  keepalivedFor = arch: {
    outPath = "${storeDir "keepalived-static-${arch}" given.keepalived.${arch}}";
    version = data.default;
  };

  imageOf = format: arch: callFile ../../nix/sysext-image.nix {
    inherit runCommand arch sysext-assembler payload format;
    keepalived = keepalivedFor arch;
    epoch = release.sourceDateEpoch;
    updateUrl = "https://keepalived-sysext.invalid/releases";
    provenance = {
      keepalived-source-hash = release.src.hash;
    };
  };
  images = builtins.mapAttrs (arch: _: imageOf "squashfs" arch) given.keepalived;
  ddis = builtins.mapAttrs (arch: _: imageOf "ddi" arch) given.keepalived;

  reproducibleFor = image: callFile ../../nix/check-reproducible.nix {
    inherit runCommand sysext-assembler image;
  };

  # The x86-64 image with one byte of its .raw flipped: the reproducibility check and the
  # release must refuse it.
  brokenImage = runCommand "broken-image"
    {
      passthru = builtins.removeAttrs images.x86-64 [ "outPath" "drvPath" "out" "all" "type" "name" "system" "builder" "args" ];
    } ''
    cp -r ${images.x86-64} "$out"
    chmod -R u+w "$out"
    raw="$out/${images.x86-64.imageFile}"
    size=$(stat -c %s "$raw")
    byte=$(od -An -tu1 -j $((size / 2)) -N1 "$raw" | tr -d ' ')
    printf "$(printf '\\%03o' $((byte ^ 255)))" | dd of="$raw" bs=1 seek=$((size / 2)) conv=notrunc status=none
  '';

  releaseOf = imageList: callFile ../../nix/release.nix {
    inherit runCommand sysext-assembler;
    images = imageList;
  };

  staticCheck = case: callFile ../../nix/check-static-binary.nix {
    inherit runCommand;
    inherit (case) arch configureFlags;
    binutils-unwrapped = null;
    keepalived = { outPath = "${storeDir "keepalived-case" case.binary}"; version = data.default; };
    emulator = given.emulators.${case.arch};
  };

  # The stage's own self-test: derivations that must fail in the sandbox and would pass outside.
  probes = {
    # A crate whose test sets a setuid bit, through the same check phase as the assembler.
    setuid-test = rustPlatform.buildRustPackage {
      pname = "setuid-probe";
      version = "0";
      src = storeDir "setuid-probe" given.probes.setuidCrate;
    };
    # A script that talks to a server listening on the build machine's loopback.
    network = runCommand "network-probe" { } ''
      exec 3<>/dev/tcp/127.0.0.1/${toString given.probes.port}
      touch "$out"
    '';
    # A script that writes into one of its inputs (the store is read-only).
    writable-source = runCommand "writable-source-probe" { } ''
      touch ${payload}/written-by-a-build
      touch "$out"
    '';
    # A script that reads a path it was not given (the repository on the build machine).
    outside-path = runCommand "outside-path-probe" { } ''
      cat ${lib.escapeShellArg given.probes.outsidePath} > /dev/null
      touch "$out"
    '';
    # A script that needs root: a device node.
    root = runCommand "root-probe" { } ''
      mknod null c 1 3
      touch "$out"
    '';
  };
in
{
  inherit sysext-assembler images ddis probes;
  reproducible = builtins.mapAttrs (_: reproducibleFor) images // {
    broken = reproducibleFor brokenImage;
  };
  reproducible-ddi = builtins.mapAttrs (_: reproducibleFor) ddis;
  release = releaseOf (builtins.attrValues images);
  release-broken = releaseOf [ brokenImage images.arm64 ];
  static = builtins.mapAttrs (_: staticCheck) given.staticCases;
}
