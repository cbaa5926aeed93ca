"""A Debian trixie virtual machine: the one real kernel with device-mapper the tests have. The host's kernel
has no device-mapper, so whatever needs dm-verity (signed Discoverable Disk Images merged by systemd-sysext)
runs here, booted with qemu-system-x86_64 under TCG (KVM guests fail on this host). Trixie carries Flatcar
Stable's systemd generation (257) and a 6.12 kernel with CONFIG_DM_VERITY=m and
CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG=y; its /usr/lib/os-release says ID=flatcar, SYSEXT_LEVEL=1.0 like the
roots of support.roots, and systemd-sysext.service is enabled, as on Flatcar.

API (stable; test modules use it):

- fixture `vm_image` (session scope): a `VMImage` with `kernel`, `initrd`, `root` (paths of the cached
  files: never write to them), `tree` (the root's directory tree, also pristine), `systemd_version`
  (e.g. "systemd 257 (257.13-1~deb13u1)") and `kernel_version`.
  `VMImage.userland(argv, bind=DIR, timeout=...)` runs a program of the guest's userland (systemd-repart,
  systemd-dissect, veritysetup, mkfs.erofs, ...) on the host, in the read-only tree with DIR bound at /mnt,
  and returns the CompletedProcess (a Failure on a non-zero exit).
- fixture `vm` (function scope): a `VM` whose `boot(files=None, script="", timeout=600, cmdline="")`
  boots the machine once and returns a `BootResult`. A module or session fixture that boots once for
  several tests makes its own: `VM(vm_image, tmp_path_factory.mktemp("vm")).boot(...)`.
  `files` maps guest paths to bytes (the content, mode 0644) or a host path (str or os.PathLike: a regular
  file, copied with its mode); they are
  in the guest's root before its PID 1 starts, so what systemd reads at boot (unit drop-ins under
  /etc/systemd/system, /etc/verity.d/*.crt, images in /var/lib/extensions) is what a test gets:
  systemd-sysext.service merges at boot what the test put there.
  `script` is a bash script run as root once multi-user.target is reached (no `set -e` unless it says
  so); one boot can run several cases in sequence (swap images, `systemctl restart systemd-sysext`).
  The machine powers off when it ends; `timeout` (seconds, whole boot) kills it otherwise.
  `cmdline` is appended to the kernel command line.
- `BootResult.status` (the script's exit status), `.stdout`, `.stderr`, `.journal` (`journalctl -b`
  after the script), `.console` (the serial console: kernel, initrd and systemd's boot messages), and
  `.check()`, which raises a Failure naming the status and carrying stderr and the journal's tail
  unless the status is 0. A boot that ends without a result (a panic, a hang until the timeout, the job
  never starting) raises a Failure with the console's tail.

How: the cache holds the kernel, the initrd and an ext4 image of the root made with `mkfs.ext4 -d` (no loop
mount). qemu opens the root with snapshot=on, so guest writes go to a temporary overlay and the cache stays
pristine. A second virtio disk is a tar archive of the job (the files and the script); a script in the
initrd's local-bottom phase unpacks it into the mounted root with the root's own tar, before the switch to
the root, i.e. before systemd starts. ska-vm-job.service (After=multi-user.target) runs the script, writes
its status, output and the journal as a tar archive onto a third disk the host reads back, and powers off.
There is no network device (-nic none).

The image is built once per input, like the roots of support.roots: `debootstrap --variant=minbase` from
the host's apt mirror, kept under CACHE/vm/trixie-HASH, HASH covering the suite, the package list, the
kernel command line and the preparation code (this module's and support.roots'), built in a temporary
directory renamed into place when complete, under a lock.

Packages: linux-image-amd64 with initramfs-tools (MODULES=list: only virtio_pci, virtio_blk and ext4 in the
initrd, dependencies added by initramfs-tools; squashfs, erofs, loop, dm_mod and dm_verity are loaded from
the root on demand); libcryptsetup12, which systemd dlopens for verity; cryptsetup-bin (veritysetup);
systemd-container (trixie's systemd-dissect lives there); systemd-repart with erofs-utils and
squashfs-tools (repart's --make-ddi=sysext formats erofs); fdisk (sfdisk); openssl."""

import fcntl
import glob
import hashlib
import inspect
import io
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass

import pytest

from support import roots
from support.common import CACHE, PREFIX, Failure, expect, run
from support.session import require

SUITE = "trixie"
PACKAGES = ("linux-image-amd64", "initramfs-tools", "systemd", "systemd-sysv", "udev", "dbus", "kmod",
            "libcryptsetup12", "cryptsetup-bin", "e2fsprogs", "procps", "iproute2", "util-linux", "fdisk",
            "systemd-container", "systemd-repart", "erofs-utils", "squashfs-tools", "openssl")
VMS = os.path.join(CACHE, "vm")
# root= names the first virtio disk; rw lets the initrd unpack the job into it; panic=-1 and qemu's
# -no-reboot end a machine that cannot boot at once instead of at the timeout; firstboot would prompt
# on the console for a locale (the root's machine-id is empty, as on a fresh Flatcar).
CMDLINE = ("console=ttyS0 root=/dev/vda rootfstype=ext4 rw panic=-1 systemd.firstboot=off "
           "systemd.show_status=1")
MEMORY_MB = 1024

INITRD_MODULES = "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n"

# initramfs-tools local-bottom script: the root is mounted (rw) at ${rootmnt}, PID 1 has not started.
# The initrd has klibc tools only, so the root's own tar unpacks the job disk.
UNPACK_JOB = r"""#!/bin/sh
PREREQ=""
case "$1" in prereqs) echo "$PREREQ"; exit 0 ;; esac
. /scripts/functions
if [ -b /dev/vdb ]; then
    chroot "${rootmnt}" /usr/bin/tar -xpf - -C / < /dev/vdb || panic "ska-vm: unpacking the job disk /dev/vdb failed"
    echo "ska-vm: job unpacked into the root" > /dev/console
fi
"""

RUN_JOB = r"""#!/bin/bash
# Runs the test's script, then writes its status, output and the boot's journal onto the result disk.
out=/run/ska-vm-result
mkdir -p "$out"
cd /root
/bin/bash /var/lib/ska-vm/script > "$out/stdout" 2> "$out/stderr" < /dev/null
echo $? > "$out/status"
journalctl -b --no-pager -o short-monotonic > "$out/journal" 2>&1
tar -C "$out" -cf /dev/vdc status stdout stderr journal
sync
"""

JOB_UNIT = """[Unit]
Description=Run the system test's job script, then power off
After=multi-user.target
ConditionPathExists=/var/lib/ska-vm/script
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/lib/ska-vm/run-job

[Install]
WantedBy=multi-user.target
"""


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _key():
    """The cache key: suite, packages, kernel command line and the code that makes the image (not this
    module's docs or fixtures)."""
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{' '.join(PACKAGES)}\n{CMDLINE}\n{INITRD_MODULES}\n{UNPACK_JOB}\n{RUN_JOB}\n"
             f"{JOB_UNIT}\n{roots.OS_RELEASE}".encode())
    for code in (roots._prepare, _prepare, build_vm_image):
        h.update(inspect.getsource(code).encode())
    return h.hexdigest()[:20]


def _prepare(tree):
    """Everything after debootstrap and support.roots' preparation: the initrd and the job's units."""
    initramfs = os.path.join(tree, "etc/initramfs-tools")
    with open(os.path.join(initramfs, "initramfs.conf")) as f:
        conf = f.read()
    # MODULES=dep looks at the build host's devices (useless in a chroot); `list` keeps the initrd to the
    # three drivers a virtio ext4 root needs, which TCG unpacks in a fraction of `most`'s time.
    expect("\nMODULES=most\n" in conf, f"{initramfs}/initramfs.conf: no MODULES=most to replace:\n{conf}")
    _write(os.path.join(initramfs, "initramfs.conf"), conf.replace("\nMODULES=most\n", "\nMODULES=list\n"))
    _write(os.path.join(initramfs, "modules"), INITRD_MODULES)
    _write(os.path.join(initramfs, "scripts/local-bottom/ska-vm-job"), UNPACK_JOB, 0o755)
    run(["chroot", tree, "update-initramfs", "-u", "-k", "all"], timeout=900)
    _write(os.path.join(tree, "usr/local/lib/ska-vm/run-job"), RUN_JOB, 0o755)
    _write(os.path.join(tree, "etc/systemd/system/ska-vm-job.service"), JOB_UNIT)
    run(["chroot", tree, "systemctl", "enable", "ska-vm-job.service"])
    # The console getty is the only login the machine would offer; nobody logs in.
    run(["chroot", tree, "systemctl", "mask", "serial-getty@ttyS0.service", "getty@tty1.service"])


def build_vm_image(cache=VMS):
    """Returns the VMImage, building and caching it first when needed."""
    final = os.path.join(cache, f"{SUITE}-{_key()}")
    os.makedirs(os.path.join(CACHE, "locks"), exist_ok=True)
    with open(os.path.join(CACHE, "locks", "vm.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(final):
            # Under the lock no other build runs: a temporary directory is a crashed build's.
            for stale in glob.glob(os.path.join(cache, f"{SUITE}-*.tmp")):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = f"{final}.{PREFIX}{os.getpid()}.tmp"
            tree = os.path.join(tmp, "tree")
            os.makedirs(tmp)
            run(["debootstrap", "--variant=minbase", "--components=main", f"--include={','.join(PACKAGES)}",
                 SUITE, tree, roots.mirror()], timeout=1800)
            roots._prepare(tree, SUITE)
            _prepare(tree)
            kernels = sorted(glob.glob(os.path.join(tree, "boot/vmlinuz-*")))
            expect(len(kernels) == 1, f"expected one kernel in {tree}/boot, found {kernels}")
            kernel_version = os.path.basename(kernels[0])[len("vmlinuz-"):]
            shutil.copy(kernels[0], os.path.join(tmp, "vmlinuz"))
            shutil.copy(os.path.join(tree, "boot", f"initrd.img-{kernel_version}"), os.path.join(tmp, "initrd.img"))
            version = run(["chroot", tree, "systemctl", "--version"]).stdout.splitlines()[0].strip()
            _write(os.path.join(tmp, "versions"), f"{version}\n{kernel_version}\n")
            # Room for what a boot adds (images, logs) on top of the tree; the file is sparse.
            size_mb = int(run(["du", "-sm", tree]).stdout.split()[0]) * 3 // 2 + 512
            run(["mkfs.ext4", "-q", "-L", "root", "-d", tree, os.path.join(tmp, "root.img"), f"{size_mb}M"],
                timeout=900)
            os.rename(tmp, final)
            for old in glob.glob(os.path.join(cache, f"{SUITE}-*")):
                if old != final and not old.endswith(".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
    with open(os.path.join(final, "versions")) as f:
        systemd_version, kernel_version = f.read().split("\n")[:2]
    return VMImage(os.path.join(final, "vmlinuz"), os.path.join(final, "initrd.img"),
                   os.path.join(final, "root.img"), os.path.join(final, "tree"), systemd_version, kernel_version)


@dataclass(frozen=True)
class VMImage:
    kernel: str
    initrd: str
    root: str
    tree: str
    systemd_version: str
    kernel_version: str

    def userland(self, argv, bind, timeout=600):
        """Runs argv from the guest's userland on the host: the tree read-only, bind at /mnt (the working
        directory), private /tmp, /var/tmp and /run, the host's /dev and a /proc."""
        return run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", _USERLAND, "sh",
                    self.tree, str(bind), *argv], timeout=timeout)


# A private mount namespace keeps the pristine tree read-only and every mount made here local.
_USERLAND = """t=$1; w=$2; shift 2
mount --bind "$t" "$t"; mount -o remount,bind,ro "$t"
mount --bind "$w" "$t/mnt"; mount -t proc proc "$t/proc"; mount --rbind /dev "$t/dev"
for d in tmp var/tmp run; do mount -t tmpfs tmpfs "$t/$d"; done
exec chroot "$t" sh -c 'cd /mnt && exec "$@"' sh "$@"
"""


@dataclass
class BootResult:
    status: int
    stdout: str
    stderr: str
    journal: str
    console: str
    seconds: float

    def check(self):
        expect(self.status == 0, f"the VM's script exited {self.status}\nstdout:\n{self.stdout[-3000:]}\n"
               f"stderr:\n{self.stderr[-3000:]}\njournal (tail):\n{self.journal[-6000:]}")
        return self


def _job_tar(path, files, script):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        def add(guest, data, mode):
            info = tarfile.TarInfo(guest.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        for guest, source in (files or {}).items():
            expect(guest.startswith("/"), f"guest path {guest!r} must be absolute")
            if isinstance(source, bytes):
                add(guest, source, 0o644)
            elif isinstance(source, (str, os.PathLike)):
                expect(os.path.isfile(source), f"{guest}: host file {source} does not exist (give bytes for content)")
                with open(source, "rb") as f:
                    add(guest, f.read(), os.stat(source).st_mode & 0o7777)
            else:
                raise Failure(f"{guest}: give bytes or the path of a host file, not {source!r}")
        add("/var/lib/ska-vm/script", script.encode(), 0o755)


class VM:
    def __init__(self, image, work):
        self.image = image
        self.work = str(work)
        self.boots = 0

    def boot(self, files=None, script="", timeout=600, cmdline=""):
        self.boots += 1
        d = os.path.join(self.work, f"boot-{self.boots}")
        os.makedirs(d)
        job, result, console = (os.path.join(d, n) for n in ("job.tar", "result.img", "console.log"))
        _job_tar(job, files, script)
        with open(result, "wb") as f:
            f.truncate(256 << 20)
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", str(MEMORY_MB), "-smp", "2",
               "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none", "-no-reboot",
               "-kernel", self.image.kernel, "-initrd", self.image.initrd,
               "-append", f"{CMDLINE} {cmdline}".strip(),
               "-drive", f"file={self.image.root},format=raw,if=virtio,snapshot=on",
               "-drive", f"file={job},format=raw,if=virtio,readonly=on",
               "-drive", f"file={result},format=raw,if=virtio",
               "-serial", f"file:{console}"]
        start = time.monotonic()
        with open(os.path.join(d, "qemu.log"), "w") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise Failure(f"the VM did not power off within {timeout} s; console (tail):\n{_tail(console)}")
        seconds = time.monotonic() - start
        with open(os.path.join(d, "qemu.log")) as f:
            qemu_log = f.read()
        expect(p.returncode == 0, f"qemu exited {p.returncode}: {qemu_log[-2000:]}\nconsole (tail):\n"
               f"{_tail(console)}")
        out = {}
        try:
            with tarfile.open(result, "r:") as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        out[os.path.basename(member.name)] = tar.extractfile(member).read().decode(errors="replace")
        except tarfile.ReadError:
            pass
        expect("status" in out, f"the VM powered off without the script's result after {seconds:.0f} s; "
               f"console (tail):\n{_tail(console)}")
        with open(console, errors="replace") as f:
            console_text = f.read()
        return BootResult(int(out["status"]), out.get("stdout", ""), out.get("stderr", ""), out.get("journal", ""),
                          console_text, seconds)


def _tail(path, chars=6000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except FileNotFoundError:
        return "(no console log)"


@pytest.fixture(scope="session")
def vm_image():
    require("qemu-system-x86_64", "mkfs.ext4", "debootstrap", "unshare")
    return build_vm_image()


@pytest.fixture
def vm(vm_image, tmp_path):
    return VM(vm_image, tmp_path)
