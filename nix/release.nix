# The default version for every target arch in one directory, ready to upload to a sysupdate
# feed: the images, their manifests, one keepalived.conf and one SHA256SUMS listing them all.
#
# The assembler owns the SHA256SUMS format and merges lines when several builds share an --out
# directory, so the release runs it again per arch; each image must come out byte-identical to
# the per-arch package, which makes every release build a reproducibility check too.
{ lib
, runCommand
, sysext-assembler
, images
}:

runCommand "keepalived-sysext-release"
{
  nativeBuildInputs = [ sysext-assembler ];
} ''
  mkdir -p "$out"
  ${lib.concatMapStrings (image: ''
    sysext-assembler build ${lib.escapeShellArgs image.assemblerArgs} \
      --out "$out" \
      --tree ${image.payload} \
      --file usr/bin/keepalived=${image.keepalived}/bin/keepalived
    if ! cmp ${image}/${image.imageFile} "$out/${image.imageFile}"; then
      echo "release: ${image.imageFile} differs from the per-arch build ${image}" >&2
      exit 1
    fi
  '') images}
''
