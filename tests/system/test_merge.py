"""The images under the real systemd-sysext and the kernel's SquashFS decoder: the x86-64 image merged into
a fake Flatcar root (`systemd-sysext --root=ROOT merge`) presents the binary, the units and
extension-release intact without hiding Flatcar's /usr; the units verify in the merged tree; systemd-sysext
refuses the arm64 image on x86-64 and the image on a non-Flatcar root, saying why; the kernel reads arm64
images with the default settings and with --xz-filter arm64."""

import os
import re
import shutil
import tempfile

from support.common import PAYLOAD, expect, run, sha256
from support.fake_root import sysext
from support.keepalived import version_output
from support.session import note, require


def test_merged_tree(merged_root, keepalived_x86_64):
    """Binary, units, extension-release; Flatcar's /usr/sbin and base /usr intact."""
    root = merged_root
    merged = os.path.join(root, "usr/bin/keepalived")
    expect(os.path.isfile(merged), f"{merged} missing after merge")
    expect(sha256(merged) == sha256(keepalived_x86_64), "merged usr/bin/keepalived differs from the built binary")
    for rel in ("usr/lib/systemd/system/keepalived.service", "usr/lib/systemd/system/keepalived.path",
                "usr/lib/systemd/system/keepalived-sysext-apply.service",
                "usr/lib/systemd/system/keepalived-sysext-merged.service", "usr/bin/keepalived-sysext",
                "usr/lib/systemd/system/multi-user.target.d/10-keepalived.conf"):
        got = os.path.join(root, rel)
        expect(os.path.isfile(got), f"{rel} missing after merge")
        with open(got) as a, open(os.path.join(PAYLOAD, rel)) as b:
            expect(a.read() == b.read(), f"{rel} differs from files/{rel}")
    rel = "usr/lib/extension-release.d/extension-release.keepalived"
    with open(os.path.join(root, rel)) as f:
        release = f.read()
    fields = dict(line.split("=", 1) for line in release.split() if "=" in line)
    for key, want in (("ID", "flatcar"), ("SYSEXT_LEVEL", "1.0"), ("ARCHITECTURE", "x86-64"),
                      ("EXTENSION_RELOAD_MANAGER", "1")):
        expect(fields.get(key, "").strip('"') == want, f"{rel}: {key} should be {want}:\n{release}")
    expect(os.path.islink(os.path.join(root, "usr/sbin")), "usr/sbin is no longer Flatcar's symlink to bin")
    expect(os.path.isfile(os.path.join(root, "usr/bin/flatcar-marker")), "base /usr/bin content hidden")
    expect(not os.path.exists(os.path.join(root, "usr/local")), "image ships usr/local")


def test_units_verify_in_merged_tree(merged_root):
    """systemd-analyze verify of keepalived.service, keepalived.path, keepalived-sysext-apply.service and the
    drop-in inside the merged tree:
    unknown keys, bad values, missing ExecStart binaries (looked up in ROOT) and missing dependencies all
    show up as output."""
    require("systemd-analyze")
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="notice")
    p = run(["systemd-analyze", "verify", "--man=no", f"--root={merged_root}", "keepalived.service",
             "keepalived.path", "keepalived-sysext-apply.service", "keepalived-sysext-merged.service",
             "multi-user.target"], check=False, env=env)
    out = (p.stdout + p.stderr).strip()
    expect(p.returncode == 0 and not out, f"systemd-analyze verify (exit {p.returncode}):\n{out}")


def test_merged_keepalived_runs(merged_keepalived):
    expect("Keepalived v" in version_output(merged_keepalived), "no version from merged binary")


def kernel_reads_arm64(image, binary, work):
    """The kernel's SquashFS decoder reads the arm64 image whatever the CPU: a loop mount (the run has its
    own mount namespace) and a byte comparison of the binary."""
    mnt = tempfile.mkdtemp(prefix="mnt-arm64-", dir=work)
    run(["mount", "-t", "squashfs", "-o", "loop,ro", image, mnt])
    try:
        with open(os.path.join(mnt, "usr/bin/keepalived"), "rb") as got, open(binary, "rb") as want:
            expect(got.read() == want.read(), "the kernel read back another arm64 binary")
    finally:
        run(["umount", mnt])


def test_kernel_reads_arm64_image_default_settings(image_arm64, keepalived_aarch64, work):
    """Default settings: 1 MiB blocks, no filter."""
    kernel_reads_arm64(image_arm64, keepalived_aarch64, work)


def test_kernel_reads_arm64_image_xz_filter_arm64(build_image, keepalived_aarch64, work):
    kernel_reads_arm64(build_image("arm64", keepalived_aarch64, "--xz-filter", "arm64"), keepalived_aarch64, work)


def check_refused(root, image, what, reason):
    """systemd-sysext must not merge the image, and must say why (its debug log names the mismatch)."""
    shutil.copy2(image, os.path.join(root, "var/lib/extensions/keepalived.raw"))
    p = sysext(root, "merge", check=False, debug=True)
    out = p.stdout + p.stderr
    merged = os.path.exists(os.path.join(root, "usr/bin/keepalived"))
    if merged:
        sysext(root, "unmerge", check=False)
    expect(not merged, f"systemd-sysext merged {what}:\n{out[-3000:]}")
    why = [line for line in out.splitlines() if "Extension 'keepalived'" in line]
    expect(why and re.search(reason, why[0]), f"no refusal naming the reason /{reason}/:\n{out[-3000:]}")
    expect("No suitable extensions found" in out, f"systemd-sysext did not report the skip:\n{out[-3000:]}")
    note(f"systemd-sysext: {why[0]}")


def test_sysext_refuses_arm64_image_on_x86_64(fake_roots, image_arm64):
    require("systemd-sysext")
    check_refused(fake_roots("root-arm64"), image_arm64, "an arm64 image on an x86-64 host", r"arm64")


def test_sysext_refuses_image_on_non_flatcar_root(fake_roots, image_x86_64):
    require("systemd-sysext")
    check_refused(fake_roots("root-debian", os_id="debian"), image_x86_64,
                  "a flatcar image into a root with ID=debian", r"for OS 'flatcar'.*'debian'")
