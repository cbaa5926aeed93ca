"""Debian's real Ignition (package `ignition`, 2.14) applying `sysext-assembler butane --ignition` configs to a
test root, and `ignition-validate` checking them. What Flatcar's initramfs does at first boot, minus the disks:
the config comes from the `file` platform, the image from an HTTP feed on 127.0.0.1.

API (used by tests/system/test_ignition.py):

- `IGNITION`, `VALIDATE`: the two programs; fixture `ignition_tools` (session) fails (never skips) when the
  package is missing and returns Ignition's version line.
- fixture `feed_http` (session): `FeedHttp`, a plain HTTP server on 127.0.0.1 (host loopback, a port the
  kernel picks) serving a directory; `feed_http.publish(sub, source_dir)` copies a build's output directory
  there and returns the URL, `feed_http.url(sub)`, `feed_http.path(sub)`, `feed_http.get(url)` (bytes, from
  the server, to prove it is up and serving before a test relies on Ignition refusing something). It runs in
  the test process, on the host's loopback rather than in the containers' network namespace: Ignition runs
  before a node boots, and no test needs the feed from inside a container.
- `ignition_config(assembler, manifest, url, out, *extra, ignition=True)`: runs `sysext-assembler butane
  [--ignition]` and writes the result to `out`; returns its text.
- `prepare_root(root)`: makes `root` something Debian's Ignition can finish on (see below).
- `ignite(root, config, work)`: runs Ignition's stages on `root`, stopping at the first that fails; returns
  an `Ignited` (.ok, .failed_stage, .log).

Stages: Ignition's units order them fetch-offline [-> fetch] [-> kargs] -> disks -> mount -> files ->
umount (internal/exec/stages and dracut/30ignition/*.service at v2.14.0). A fetch stage reads the config
through the platform's provider (the `file` platform reads $IGNITION_CONFIG_FILE) and caches it; every later
stage reads only that cache. fetch-offline is the same fetch with networking still off: it caches this config
too, flags that the files stage needs the network (the image is an http source), and then ignition-fetch.service
is skipped because a config is cached. Here the network (loopback) is up from the start, so the fetch stage
itself does the fetch, as it does where fetch-offline is not used. kargs has nothing to do without
`kernelArguments` (and needs the distribution's kargs helper). So the stages run are fetch, disks, mount,
files, umount; disks, mount and umount find nothing to do in this config and run anyway, so that a config
that grew a disk or filesystem section would be noticed.

Isolation: each stage runs in a mount namespace of its own with `work/run` bound over /run (Ignition keeps its
config cache /run/ignition.json and its state /run/ignition/state there, at their default paths, and they
carry over between stages as in the initramfs), an empty file over /proc/cmdline (Ignition's first config
source is `ignition.config.url=` on the kernel command line, which must not be the host's) and
IGNITION_SYSTEM_CONFIG_DIR pointing at an empty directory (no base configs from /usr/lib/ignition).

SELinux: Debian builds Ignition with relabeling on (the upstream default), so its files stage ends by running
`setfiles` with ROOT/etc/selinux/config's policy, and fails when the root has none. Flatcar builds it with
`-X .../internal/distro.selinuxRelabel=false` (sys-apps/ignition in Flatcar's scripts repository) and never
relabels. `prepare_root` gives the root an SELinux configuration whose only file context is `<<none>>`, so
Debian's real `setfiles` (policycoreutils) runs and labels nothing: the files end up as Flatcar's Ignition
leaves them."""

import functools
import http.server
import os
import shutil
import subprocess
import threading
import urllib.request
from dataclasses import dataclass

import pytest

from support.common import expect, run

IGNITION = "/usr/lib/dracut/modules.d/30ignition/ignition"
VALIDATE = "ignition-validate"
STAGES = ("fetch", "disks", "mount", "files", "umount")
SELINUX_CONFIG = "SELINUX=permissive\nSELINUXTYPE=mcs\n"
# setfiles' "do not label" context for every path.
FILE_CONTEXTS = "/.*\t<<none>>\n"


@pytest.fixture(scope="session")
def ignition_tools():
    for tool in (IGNITION, shutil.which(VALIDATE) or VALIDATE, shutil.which("setfiles") or "setfiles"):
        expect(os.access(tool, os.X_OK),
               f"{tool} is missing: install Debian's ignition and policycoreutils packages (.ci/run does)")
    return run([IGNITION, "-version"]).stdout.strip()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class FeedHttp:
    def __init__(self, root):
        self.root = root
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, sub):
        return f"http://127.0.0.1:{self.server.server_address[1]}/{sub}/"

    def path(self, sub):
        return os.path.join(self.root, sub)

    def publish(self, sub, source_dir):
        shutil.copytree(source_dir, self.path(sub))
        return self.url(sub)

    def get(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            expect(r.status == 200, f"GET {url}: HTTP {r.status}")
            return r.read()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def feed_http(tmp_path_factory):
    server = FeedHttp(str(tmp_path_factory.mktemp("ignition-feed")))
    try:
        yield server
    finally:
        server.stop()


def ignition_config(assembler, manifest, url, out, *extra, ignition=True):
    cmd = [assembler, "butane", *(["--ignition"] if ignition else []), "--manifest", manifest,
           "--update-url", url, *extra]
    text = run(cmd).stdout
    with open(out, "w") as f:
        f.write(text)
    return text


def prepare_root(root):
    policy = os.path.join(root, "etc/selinux/mcs/contexts/files")
    os.makedirs(policy, exist_ok=True)
    with open(os.path.join(root, "etc/selinux/config"), "w") as f:
        f.write(SELINUX_CONFIG)
    with open(os.path.join(policy, "file_contexts"), "w") as f:
        f.write(FILE_CONTEXTS)


@dataclass
class Ignited:
    ok: bool
    failed_stage: str
    log: str


# Runs in a fresh mount namespace: the work directory's run/ over /run, an empty kernel command line.
_STAGE_SCRIPT = 'mount --bind "$1" /run && mount --bind "$2" /proc/cmdline && shift 2 && exec "$@"'


def ignite(root, config, work):
    """Runs Ignition's stages on root with config (the file platform), as the initramfs would."""
    os.makedirs(os.path.join(work, "run"), exist_ok=True)
    os.makedirs(os.path.join(work, "system-config"), exist_ok=True)
    cmdline = os.path.join(work, "cmdline")
    open(cmdline, "w").close()
    env = dict(os.environ, IGNITION_CONFIG_FILE=os.path.abspath(config),
               IGNITION_SYSTEM_CONFIG_DIR=os.path.join(work, "system-config"))
    log = []
    for stage in STAGES:
        p = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _STAGE_SCRIPT, "sh",
             os.path.join(work, "run"), cmdline, IGNITION, f"--root={root}", "--platform=file",
             f"--stage={stage}", "--log-to-stdout"],
            env=env, capture_output=True, text=True, timeout=300)
        log.append(f"=== ignition --stage={stage}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        if p.returncode != 0:
            return Ignited(False, stage, "".join(log))
    return Ignited(True, "", "".join(log))
