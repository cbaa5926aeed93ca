"""A node provisioned by the product's Ignition config and updated from a signed DDI feed under the strict
image policy, with a real kernel's dm-verity: tests/vm/node-boot on the Debian trixie image (systemd 257,
Flatcar Stable's generation; support.node_image), the harness the Flatcar workflow job runs on Flatcar's own
QEMU images (.github/workflows/flatcar.yml).

One boot, two real keepalived versions (the test-only older one as version 1, the data file's default as
version 2), each an assembler DDI signed with a certificate made for the run, in a feed whose SHA256SUMS
an OpenPGP key made for the run signs (node-boot make-feed), served by node-boot over https to the VM only.
In that boot (tests/vm/node-check): Ignition installs version 1, systemd-sysext.service merges it through
dm-verity under root=signed+absent:usr=signed+absent, keepalived.path starts keepalived once
/etc/keepalived/keepalived.conf appears; a feed whose SHA256SUMS.gpg another key made is refused by
systemd-sysupdate, and a DDI another certificate signed and an unsigned DDI (each listed in a correctly
signed SHA256SUMS, so systemd-sysupdate installs it) are refused by `keepalived-sysext apply`: each time
the node is still on version 1, merged through its dm-verity device, and keepalived, running before,
still runs with the same pid, and keepalived-sysext-apply.service is left failed; finally
systemd-sysupdate installs version 2 and `keepalived-sysext apply` merges it through dm-verity and
restarts keepalived on it. Each check is a test here."""

import json
import os
import subprocess

import pytest

from support.builds import assembler_build
from support.common import REPO, expect, keepalived_version, old_keepalived_version, run
from support.node_image import node_image  # noqa: F401 (fixture)
from support.session import note

NODE_BOOT = os.path.join(REPO, "tests", "vm", "node-boot")
CHECKS = ("ignition-installed-v1", "strict-policy", "merged-through-dm-verity", "path-waits-for-conf",
          "path-starts-keepalived", "network", "badsig-refused", "badddi-refused", "unsigned-refused", "update-to-v2")
# TCG boots the node in minutes; the five sysupdate and apply steps add a few more under load.
TIMEOUT = 2400


@pytest.fixture(scope="module")
def node_feed(assembler, keepalived_x86_64_old, keepalived_x86_64, tmp_path_factory):
    d = tmp_path_factory.mktemp("node-feed")
    images = []
    for version, binary in ((old_keepalived_version(), keepalived_x86_64_old),
                            (keepalived_version(), keepalived_x86_64)):
        out = d / f"build-{version}"
        assembler_build(assembler, "x86-64", binary, out, "--format", "ddi", version=version)
        images.append(str(out / f"keepalived-v{version}-x86-64.raw"))
    run([NODE_BOOT, "make-feed", "--assembler", assembler, "--out", str(d / "node"), *images])
    return d / "node"


@pytest.fixture(scope="module")
def node_boot(node_image, node_feed, assembler, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("node-boot")
    p = subprocess.run([NODE_BOOT, "boot", "--assembler", assembler, "--feed-dir", str(node_feed), "--work",
                        str(work), "--accel", "tcg", "--timeout", str(TIMEOUT), "--kernel", node_image.kernel,
                        "--initrd", node_image.initrd, "--root", node_image.root],
                       capture_output=True, text=True, timeout=TIMEOUT + 300)
    results = work / "results.json"
    expect(p.returncode in (0, 1) and results.exists(),
           f"node-boot exited {p.returncode} without results:\n{p.stdout}\n{p.stderr[-8000:]}")
    out = json.loads(results.read_text())
    note(f"node-boot: trixie node ({node_image.systemd_version}, kernel {node_image.kernel_version}), "
         f"Ignition + {len(out['checks'])} checks in one boot: {out['seconds']} s")
    return out


def test_the_harness_reports_every_check(node_boot):
    expect(sorted(c["name"] for c in node_boot["checks"]) == sorted(CHECKS),
           f"node-boot's checks {[c['name'] for c in node_boot['checks']]} are not {CHECKS}")


@pytest.mark.parametrize("name", CHECKS)
def test_node(node_boot, name):
    check = {c["name"]: c for c in node_boot["checks"]}.get(name)
    expect(check is not None, f"node-boot reported no check {name}")
    expect(check["ok"], f"{name}: {check['detail']}")
