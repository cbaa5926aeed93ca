# The shipped keepalived must run on any Flatcar host: no program interpreter (PT_INTERP), no
# shared library (DT_NEEDED), the machine type of its arch, and, run through the build
# platform's emulator (qemu-user for a foreign arch), the version and every feature the data
# file asks for. A configure script that silently drops libnl or nftables fails here.
{ lib
, runCommand
, binutils-unwrapped
, keepalived
, arch
, emulator
}:

let
  elfMachine = {
    x86-64 = "Advanced Micro Devices X86-64";
    arm64 = "AArch64";
  }.${arch};
  # Names keepalived prints under "Config options" / "System options" in `keepalived -v`.
  expectedOptions = [ "VRRP" "VRRP_AUTH" "LVS" "BFD" "JSON" "NFTABLES" "LIBNL3" ];
in
runCommand "check-static-keepalived-${keepalived.version}-${arch}"
{
  nativeBuildInputs = [ binutils-unwrapped ];
} ''
  bin=${keepalived}/bin/keepalived
  fail() { echo "static check ($bin): $*" >&2; exit 1; }

  readelf --file-header --wide "$bin" > header
  grep -F "Machine:" header | grep -qF ${lib.escapeShellArg elfMachine} \
    || fail "not a ${arch} executable: $(grep -F Machine: header)"

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
  for option in ${lib.escapeShellArgs expectedOptions}; do
    grep -E '^(Config|System) options:' version | grep -qw -- "$option" \
      || fail "built without $option"
  done

  touch "$out"
''
