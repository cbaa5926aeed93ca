# The image's bytes must depend only on what goes in, not on how the inputs sit on disk. Copy
# the payload and the binary into a fresh tree created in reverse order, with other mtimes,
# other permission bits (same executable bits) and another umask, run the same assembler
# command in another directory, another time zone and locale, and require identical output.
# Works for either format: the image's assemblerArgs carry --format.
{ lib
, runCommand
, sysext-assembler
, image
}:

# Named after the image's derivation: a squashfs image and a DDI share their file name.
runCommand "check-reproducible-${image.name}"
{
  nativeBuildInputs = [ sysext-assembler ];
} ''
  umask 0077
  export TZ=XYZ-14 LC_ALL=C
  copy=$PWD/elsewhere/inputs
  mkdir -p "$copy/payload"

  # Directories first (deepest last is fine: mkdir -p), then files in reverse byte order.
  (cd ${image.payload} && find . -mindepth 1 -type d | LC_ALL=C sort -r) | while read -r dir; do
    mkdir -p "$copy/payload/$dir"
  done
  (cd ${image.payload} && find . -mindepth 1 ! -type d | LC_ALL=C sort -r) | while read -r entry; do
    cp --no-dereference --no-preserve=all ${image.payload}/"$entry" "$copy/payload/$entry"
    if [ -x ${image.payload}/"$entry" ] && [ ! -L ${image.payload}/"$entry" ]; then
      chmod u+x "$copy/payload/$entry"
    fi
  done
  cp --no-preserve=all ${image.keepalived}/bin/keepalived "$copy/keepalived"
  chmod 0700 "$copy/keepalived"

  # Mtimes unlike the store's (1970-01-01T00:00:01Z) and unlike each other.
  stamp=1000000000
  find "$copy" -depth | LC_ALL=C sort | while read -r path; do
    touch --no-dereference --date=@$stamp "$path"
    stamp=$((stamp + 86399))
  done

  mkdir -p "$copy/../out"
  sysext-assembler build ${lib.escapeShellArgs image.assemblerArgs} \
    --out "$copy/../out" \
    --tree "$copy/payload" \
    --file usr/bin/keepalived="$copy/keepalived"

  for file in ${image.imageFile} SHA256SUMS keepalived.conf; do
    if ! cmp ${image}/"$file" "$copy/../out/$file"; then
      echo "not reproducible: $file differs between ${image} and a rebuild from shuffled inputs" >&2
      exit 1
    fi
  done
  manifest=${lib.removeSuffix ".raw" image.imageFile}.manifest.json
  cmp ${image}/"$manifest" "$copy/../out/$manifest"
  touch "$out"
''
