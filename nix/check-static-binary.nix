# The shipped keepalived must run on any Flatcar host: no program interpreter (PT_INTERP), no
# shared library (DT_NEEDED), the machine type of its arch, and, run through the build
# platform's emulator (qemu-user for a foreign arch), the version and exactly the features the
# data file's configure flags ask for. A configure script that silently drops libnl or nftables
# (it only warns when a library is missing) fails here.
{ lib
, runCommand
, binutils-unwrapped
, keepalived
, arch
, emulator
, configureFlags
}:

let
  elfMachine = {
    x86-64 = "Advanced Micro Devices X86-64";
    arm64 = "AArch64";
  }.${arch};
  # The name `keepalived -v` prints under "Config options" / "System options" for each configure
  # feature. vrrp, vrrp-auth, lvs and libnl are built unless a flag turns them off; the others
  # only when a flag turns them on.
  optionNames = {
    vrrp = "VRRP";
    vrrp-auth = "VRRP_AUTH";
    lvs = "LVS";
    libnl = "LIBNL3";
    bfd = "BFD";
    json = "JSON";
    nftables = "NFTABLES";
  };
  onByDefault = [ "vrrp" "vrrp-auth" "lvs" "libnl" ];
  isOn = feature:
    builtins.elem "--enable-${feature}" configureFlags
    || (builtins.elem feature onByDefault && !(builtins.elem "--disable-${feature}" configureFlags));
  features = builtins.attrNames optionNames;
  expectedOptions = map (feature: optionNames.${feature}) (builtins.filter isOn features);
  absentOptions = map (feature: optionNames.${feature}) (builtins.filter (feature: !(isOn feature)) features);
in
runCommand "check-static-keepalived-${keepalived.version}-${arch}"
{
  nativeBuildInputs = [ binutils-unwrapped ];
} ''
  bin=${keepalived}/bin/keepalived
  fail() { echo "static check ($bin): $*" >&2; exit 1; }

  readelf --file-header --wide "$bin" > header
  grep -F "Machine:" header | grep -qF ${lib.escapeShellArg elfMachine} \
    || fail "is not an executable for ${arch}: $(grep -F Machine: header)"

  readelf --program-headers --wide "$bin" > program-headers
  if grep -qw INTERP program-headers; then
    fail "has a PT_INTERP program header (dynamically linked)"
  fi

  readelf --dynamic --wide "$bin" > dynamic
  if grep -qF "(NEEDED)" dynamic; then
    fail "needs shared libraries: $(grep -F '(NEEDED)' dynamic)"
  fi

  # keepalived -v prints to stderr and exits 0.
  ${emulator} "$bin" -v > version 2>&1 || fail "keepalived -v failed: $(cat version)"
  cat version
  grep -qF "Keepalived v${keepalived.version}" version || fail "does not report version ${keepalived.version}"
  grep -E '^(Config|System) options:' version > options || fail "keepalived -v lists no options"
  for option in ${lib.escapeShellArgs expectedOptions}; do
    grep -qw -- "$option" options || fail "built without $option, which nix/keepalived.json asks for"
  done
  for option in ${lib.escapeShellArgs absentOptions}; do
    if grep -qw -- "$option" options; then
      fail "built with $option, which nix/keepalived.json turns off"
    fi
  done

  touch "$out"
''
