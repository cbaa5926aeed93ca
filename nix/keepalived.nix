# keepalived as one static, stripped, musl-linked executable for the host platform of the
# package set this is called from (pkgsCross.<target>.pkgsStatic in flake.nix).
#
# Features and versions come from keepalived.json, the file the non-Nix test build reads too.
# The install layout is fixed here: the binary is taken from the build tree (no `make install`,
# which would write /etc), compiled with /usr, /etc and /run as its paths, as on Flatcar.
#
# A derivation of its own rather than an override of nixpkgs' `keepalived`: docs/building.md
# ("Why keepalived is not nixpkgs' keepalived") gives the reasons.
{ lib
, stdenv
, autoreconfHook
, pkg-config
, openssl
, libnl
, libmnl
, libnftnl
, version
, release
, configureFlags
, opensslConfigureFlags
, src
}:

let
  # What configure is asked for: the data file's features and the install layout. stdenv adds
  # the build and host platforms (--build=<build machine>) and the static flags on top; the
  # manifest records these instead, so it does not depend on the machine that built it.
  projectConfigureFlags = configureFlags ++ [
    "--prefix=/usr"
    "--sysconfdir=/etc"
  ];

  # The data file's OpenSSL options on top of nixpkgs' own (keepalived.json, "openssl", says why:
  # no-sm2-precomp drops a 512 KiB incompressible table from the arm64 binary). The test build
  # passes the same options to its Configure.
  openssl' = openssl.overrideAttrs (old: {
    configureFlags = (old.configureFlags or [ ]) ++ opensslConfigureFlags;
  });
in
stdenv.mkDerivation (finalAttrs: {
  pname = "keepalived-static";
  inherit version src;

  # A git checkout has no configure script; the release tarball ships one, which is used as is.
  nativeBuildInputs = [ pkg-config ] ++ lib.optionals release.autoreconf [ autoreconfHook ];

  # openssl: VRRP authentication and checkers' TLS; libnl: IPVS over netlink (needed for IPv6
  # virtual servers); libmnl + libnftnl: nftables (vrrp_strict's firewall rules), only when the
  # data file's flags enable it.
  buildInputs = [ openssl' libnl ]
    ++ lib.optionals (builtins.elem "--enable-nftables" configureFlags) [ libmnl libnftnl ];

  # stdenv would pass --prefix=$out; keepalived compiles its prefix and sysconfdir into the
  # default configuration path, so give it the paths of the system it runs on instead. The data
  # file's flags fix the iproute2 directories too (--with-iproute-{etc,usr}-dir): configure would
  # otherwise ask the build machine's `ip` for them.
  # Through finalAttrs, so an overrideAttrs of passthru.projectConfigureFlags changes the build and
  # the manifest's record of it together.
  dontAddPrefix = true;
  configureFlags = finalAttrs.passthru.projectConfigureFlags;

  # keepalived's configure mishandles a static pkg-config in two places (nix/keepalived-pkg-config
  # says how; tests/e2e/build-keepalived uses the same script): without this, libnl is silently
  # left out. The real pkg-config is nixpkgs' target-prefixed wrapper, which adds --static.
  preConfigure = ''
    export KEEPALIVED_REAL_PKG_CONFIG="$PKG_CONFIG"
    export PKG_CONFIG=${./keepalived-pkg-config}
    mkdir -p "$TMPDIR/pkg-config-bin"
    ln -s ${./keepalived-pkg-config} "$TMPDIR/pkg-config-bin/pkg-config"
    export PATH="$TMPDIR/pkg-config-bin:$PATH"
  '';

  enableParallelBuilding = true;

  # configure lists -lnl-3 before -lnl-genl-3 (it drops the repeated -lnl-3 that pkg-config
  # gives after -lnl-genl-3). GNU ld resolves static archives in command-line order, so name
  # both again, in dependency order, in LIBS, which automake puts last on the link line.
  preBuild = ''
    makeFlagsArray+=("LIBS=-lnl-genl-3 -lnl-3")
  '';

  installPhase = ''
    runHook preInstall
    install -D -m 0755 keepalived/keepalived "$out/bin/keepalived"
    runHook postInstall
  '';

  # Strip the symbol table as well as debug info: the image ships only what runs.
  stripAllList = [ "bin" ];

  passthru = { inherit projectConfigureFlags opensslConfigureFlags; };

  meta = {
    description = "keepalived, statically linked against musl";
    homepage = "https://www.keepalived.org";
    license = lib.licenses.gpl2Plus;
    platforms = lib.platforms.linux;
    mainProgram = "keepalived";
  };
})
