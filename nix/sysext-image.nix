# One sysext image for one keepalived binary: the directory a sysupdate feed publishes
# (keepalived-vVERSION-ARCH.raw, its .manifest.json, SHA256SUMS, keepalived.conf).
#
# format "squashfs" is the bare SquashFS; "ddi" wraps it in an unsigned Discoverable Disk Image
# (GPT: root partition and its dm-verity hash tree). A DDI is signed after the build, by whoever
# holds the key (`sysext-assembler sign`, docs/building.md): keys never enter a Nix build, and the
# signature partition is added outside the store. `--format` is passed only for a DDI, so the
# squashfs command line, and with it every squashfs image's bytes, stays what it always was.
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
, format ? "squashfs"
}:

let
  inherit (keepalived) version;
  described = {
    squashfs = "SquashFS";
    ddi = "unsigned Discoverable Disk Image: SquashFS and dm-verity hash tree";
  };
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
    "--restart-unit"
    "keepalived-sysext-merged.service"
    "--epoch"
    (toString epoch)
    "--update-url"
    updateUrl
  ]
  ++ lib.concatMap (key: [ "--provenance" "${key}=${provenance.${key}}" ]) (lib.attrNames provenance)
  ++ lib.optionals (format == "ddi") [ "--format" "ddi" ];
in
assert lib.assertOneOf "nix/sysext-image.nix: format" format (lib.attrNames described);
runCommand "keepalived-sysext-${lib.optionalString (format == "ddi") "ddi-"}${version}-${arch}"
{
  nativeBuildInputs = [ sysext-assembler ];
  passthru = {
    inherit assemblerArgs keepalived payload arch format;
    imageFile = "keepalived-v${version}-${arch}.raw";
  };
  meta.description = "keepalived systemd-sysext image for Flatcar (${arch}, ${described.${format}})";
} ''
  mkdir -p "$out"
  sysext-assembler build ${lib.escapeShellArgs assemblerArgs} \
    --out "$out" \
    --tree ${payload} \
    --file usr/bin/keepalived=${keepalived}/bin/keepalived
''
