{
  description = "keepalived as a reproducible systemd-sysext for Flatcar: static musl builds for x86-64 and arm64";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;

      # The sysupdate feed the images are published to: the URL of the directory that holds
      # SHA256SUMS and the .raw files. It becomes Path= in the shipped keepalived.conf transfer
      # file, so set it here before building a release. The placeholder uses the reserved
      # .invalid domain (RFC 2606): an unset feed fails to resolve instead of reaching a stranger.
      updateUrl = "https://keepalived-sysext.invalid/releases";

      # Versions, sources, hashes and configure flags: shared with tests/e2e/build-keepalived.
      data = builtins.fromJSON (builtins.readFile ./nix/keepalived.json);
      versions = builtins.attrNames data.versions;

      systems = [ "x86_64-linux" "aarch64-linux" ];

      # Target arches by their systemd names, each with the nixpkgs set that cross-compiles
      # statically linked musl binaries for it (no emulation at build time).
      arches = [ "x86-64" "arm64" ];
      staticPkgsFor = pkgs: {
        x86-64 = pkgs.pkgsCross.musl64.pkgsStatic;
        arm64 = pkgs.pkgsCross.aarch64-multiplatform-musl.pkgsStatic;
      };
      hostArch = {
        x86_64-linux = "x86-64";
        aarch64-linux = "arm64";
      };

      # "2.4.3" -> "2_4_3": the command line reads a dot in `.#name` as an attribute path.
      versionTag = version: lib.replaceStrings [ "." ] [ "_" ] version;

      # Written into every manifest: what the image was built from, and nothing that depends on
      # the machine that built it. The flake's own revision is left out on purpose: it would make
      # every commit rebuild every image (and the VM test) for a manifest that differs only in
      # that line; a release names its commit in its tag instead (docs/building.md, "Publishing a feed").
      provenanceFor = keepalived: release: {
        keepalived-source =
          if release.src.type == "url" then release.src.url
          else "github:${release.src.owner}/${release.src.repo}/${release.src.commit} (tag ${release.src.tag})";
        keepalived-source-hash = release.src.hash;
        # The data file's flags and the install layout's, not the ones stdenv adds for the build
        # machine (--build=...).
        keepalived-configure-flags = toString keepalived.projectConfigureFlags;
        # Added to nixpkgs' own OpenSSL options (keepalived.json, "openssl").
        openssl-configure-flags = toString keepalived.opensslConfigureFlags;
        nixpkgs-rev = nixpkgs.rev;
      };

      perSystem = system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          staticPkgs = staticPkgsFor pkgs;

          rustSrc = pkgs.callPackage ./nix/rust-source.nix { };
          nixSrc = pkgs.callPackage ./nix/nix-source.nix { };
          sysext-assembler = pkgs.callPackage ./nix/sysext-assembler.nix { src = rustSrc; };

          keepalivedFor = arch: version:
            let
              release = data.versions.${version};
            in
            staticPkgs.${arch}.callPackage ./nix/keepalived.nix {
              inherit version release;
              inherit (data) configureFlags;
              opensslConfigureFlags = data.openssl.configureFlags;
              src = pkgs.callPackage ./nix/keepalived-src.nix {
                inherit version;
                inherit (release) src;
              };
            };

          # format: "squashfs" (what the feed publishes today) or "ddi" (unsigned; signed and
          # published outside Nix, docs/building.md).
          imageOf = format: arch: version:
            let
              release = data.versions.${version};
              keepalived = keepalivedFor arch version;
            in
            pkgs.callPackage ./nix/sysext-image.nix {
              inherit sysext-assembler arch updateUrl keepalived format;
              payload = ./files;
              # The source release date, so the same source gives the same image any day.
              epoch = release.sourceDateEpoch;
              provenance = provenanceFor keepalived release;
            };
          imageFor = imageOf "squashfs";
          ddiFor = imageOf "ddi";

          # Every (version, arch) pair, e.g. { name = "2_4_3-arm64"; version = "2.4.3"; arch = "arm64"; }.
          variants = lib.concatMap
            (version: map
              (arch: {
                name = "${versionTag version}-${arch}";
                inherit version arch;
              })
              arches)
            versions;
          forEachVariant = prefix: f:
            lib.listToAttrs (map
              (variant: {
                name = "${prefix}-${variant.name}";
                value = f variant.arch variant.version;
              })
              variants);

          packages = {
            keepalived-x86-64 = imageFor "x86-64" data.default;
            keepalived-arm64 = imageFor "arm64" data.default;
            keepalived-ddi-x86-64 = ddiFor "x86-64" data.default;
            keepalived-ddi-arm64 = ddiFor "arm64" data.default;
            keepalived-static-x86-64 = keepalivedFor "x86-64" data.default;
            keepalived-static-arm64 = keepalivedFor "arm64" data.default;
            inherit sysext-assembler;
            # SquashFS images only: a feed serves one format, and a DDI is published only once it
            # is signed, which happens outside Nix where the key is (docs/building.md).
            release = pkgs.callPackage ./nix/release.nix {
              inherit sysext-assembler;
              images = map (arch: imageFor arch data.default) arches;
            };
            default = imageFor hostArch.${system} data.default;
          }
          // forEachVariant "keepalived" imageFor
          // forEachVariant "keepalived-ddi" ddiFor
          // forEachVariant "keepalived-static" keepalivedFor;

          checks = {
            # buildRustPackage runs `cargo test` (minus root_* tests) in its check phase.
            sysext-assembler-tests = sysext-assembler;
            clippy = pkgs.callPackage ./nix/check-clippy.nix { src = rustSrc; };
            rustfmt = pkgs.callPackage ./nix/check-rustfmt.nix { src = rustSrc; };
            nix-format = pkgs.callPackage ./nix/check-nix-format.nix { src = nixSrc; };
            inherit (packages) release;
            vm-failover = pkgs.callPackage ./nix/check-vm-failover.nix {
              image = packages.default;
            };
          }
          // forEachVariant "static-binary"
            (arch: version: pkgs.callPackage ./nix/check-static-binary.nix {
              inherit arch;
              inherit (data) configureFlags;
              keepalived = keepalivedFor arch version;
              emulator = staticPkgs.${arch}.stdenv.hostPlatform.emulator staticPkgs.${arch}.buildPackages;
            })
          // forEachVariant "reproducible"
            (arch: version: pkgs.callPackage ./nix/check-reproducible.nix {
              inherit sysext-assembler;
              image = imageFor arch version;
            })
          // forEachVariant "reproducible-ddi"
            (arch: version: pkgs.callPackage ./nix/check-reproducible.nix {
              inherit sysext-assembler;
              image = ddiFor arch version;
            });
        in
        {
          inherit packages checks;
          devShell = pkgs.callPackage ./nix/dev-shell.nix { inherit sysext-assembler; };
          formatter = pkgs.callPackage ./nix/formatter.nix { };
        };

      bySystem = lib.genAttrs systems perSystem;

      # What a Hydra jobset builds (hydraJobs.JOB.SYSTEM, as nixpkgs' release.nix lays out its
      # jobs): the published images, the release and every check, for both build systems.
      hydraPackages = [
        "keepalived-x86-64"
        "keepalived-arm64"
        "keepalived-ddi-x86-64"
        "keepalived-ddi-arm64"
        "release"
      ];
    in
    {
      packages = lib.mapAttrs (_: outputs: outputs.packages) bySystem;
      checks = lib.mapAttrs (_: outputs: outputs.checks) bySystem;
      devShells = lib.mapAttrs (_: outputs: { default = outputs.devShell; }) bySystem;
      formatter = lib.mapAttrs (_: outputs: outputs.formatter) bySystem;
      hydraJobs = lib.genAttrs hydraPackages (name: lib.mapAttrs (_: outputs: outputs.packages.${name}) bySystem)
        // { checks = lib.mapAttrs (_: outputs: outputs.checks) bySystem; };
    };
}
