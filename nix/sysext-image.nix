# One sysext image for one keepalived binary: the directory a sysupdate feed publishes
# (keepalived-vVERSION-ARCH.raw, its .manifest.json, SHA256SUMS, keepalived.conf).
#
# Everything that decides the image's bytes is in assemblerArgs (passed through, so the
# reproducibility check and the release re-run exactly the same command) plus the payload tree
# and the binary.
{ lib
, runCommand
, sysext-assembler
, keepalived
, payload
, arch
, epoch
, updateUrl
, provenance
}:

let
  inherit (keepalived) version;
  assemblerArgs = [
    "--name"
    "keepalived"
    "--version"
    version
    "--arch"
    arch
    "--os"
    "flatcar"
    "--reload-manager"
    "--epoch"
    (toString epoch)
    "--update-url"
    updateUrl
  ]
  ++ lib.concatMap (key: [ "--provenance" "${key}=${provenance.${key}}" ]) (lib.attrNames provenance);
in
runCommand "keepalived-sysext-${version}-${arch}"
{
  nativeBuildInputs = [ sysext-assembler ];
  passthru = {
    inherit assemblerArgs keepalived payload arch;
    imageFile = "keepalived-v${version}-${arch}.raw";
  };
  meta.description = "keepalived ${version} systemd-sysext image for Flatcar (${arch})";
} ''
  mkdir -p "$out"
  sysext-assembler build ${lib.escapeShellArgs assemblerArgs} \
    --out "$out" \
    --tree ${payload} \
    --file usr/bin/keepalived=${keepalived}/bin/keepalived
''
