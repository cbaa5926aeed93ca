"""A systemd-sysupdate feed as the project publishes it (nix/release.nix: `sysext-assembler build
--update-url URL` run once per arch into one directory: the images of both arches, their manifests, one
SHA256SUMS and the transfer file), signed with a key made for this run and served over HTTP on 127.0.0.1
inside the run's network namespace (support.containers.network), where the containers see it.

API (stable; used by tests/system/test_*.py and other fixture modules):

- fixture `keys` (session): `Keys` with a throwaway GNUPGHOME. `keys.trusted` and `keys.other` are two
  signing keys; `keys.pubring(key)` is the binary public keyring (`gpg --export`) of one of them, the form
  /etc/systemd/import-pubring.gpg takes; `keys.sign(directory, key)` writes SHA256SUMS.gpg, a detached
  signature of SHA256SUMS.
- fixture `feed_server` (session): `FeedServer`; `feed_server.url(sub)` is the http URL of the served
  directory `feed_server.path(sub)`. `feed_server.assert_up(sub)` fetches SHA256SUMS from inside the
  namespace: call it before a test relies on sysupdate refusing something, so that a refusal is not just
  a dead server.
- fixture `make_feed` (session): `make_feed(sub, versions, arches=("x86-64", "arm64"), sign="trusted")`
  builds the release layout into the served directory `sub` with the assembler (images of every version
  and arch, SHA256SUMS merged by the assembler, TRANSFER_FILE, SHA256SUMS.gpg unless sign is None) and
  returns a `FeedDir` (.sub, .path, .url, .transfer: the transfer file's text). sign names the key
  ("trusted" or "other").
- `copy_feed(feed, feed_server, sub)`: a served copy of a feed under another name whose transfer file
  points at the copy, for tests that tamper with it.
- `TRANSFER_FILE`: the transfer file's name as `build` writes it (src/names.rs transfer_file_name).
- `MARKER`: every image built here is the project's payload and static keepalived plus this one file,
  usr/share/keepalived-sysext-test/version, holding the image's version, so a test can tell which version
  is merged.

The version built for "newer" in the update scenario is `newer_version()`: the data file's default with
`.1` appended, which systemd's version comparison orders after it."""

import os
import shutil
import subprocess

import pytest

from support.builds import assembler_build
from support.common import expect, keepalived_version, run

TRANSFER_FILE = "keepalived.conf"
MARKER = "usr/share/keepalived-sysext-test/version"


def newer_version():
    return keepalived_version() + ".1"




class Keys:
    def __init__(self, home):
        self.home = home
        os.makedirs(home, mode=0o700)
        self.trusted = self._generate("keepalived-sysext test feed <feed@example.org>")
        self.other = self._generate("someone else <other@example.org>")

    def gpg(self, *args, **kw):
        return run(["gpg", "--homedir", self.home, "--batch", "--no-tty", *args], **kw)

    def _generate(self, uid):
        self.gpg("--passphrase", "", "--quick-generate-key", uid, "ed25519", "sign", "never")
        out = self.gpg("--with-colons", "--list-keys", uid).stdout
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def pubring(self, key):
        p = subprocess.run(["gpg", "--homedir", self.home, "--batch", "--export", key], capture_output=True)
        expect(p.returncode == 0 and p.stdout, f"gpg --export {key}: {p.stderr.decode(errors='replace')}")
        return p.stdout

    def sign(self, directory, key):
        self.gpg("--yes", "--local-user", key, "--detach-sign", "--output",
                 os.path.join(directory, "SHA256SUMS.gpg"), os.path.join(directory, "SHA256SUMS"))


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    k = Keys(str(tmp_path_factory.mktemp("gnupg") / "home"))
    try:
        yield k
    finally:
        run(["gpgconf", "--homedir", k.home, "--kill", "all"], check=False)


class FeedServer:
    def __init__(self, network, root):
        self.network = network
        self.root = root
        # Port 0: the kernel picks a free port; the server prints it.
        script = ("import functools, http.server, sys\n"
                  "class H(http.server.SimpleHTTPRequestHandler):\n"
                  "    def log_message(self, *a): pass\n"
                  "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0),"
                  " functools.partial(H, directory=sys.argv[1]))\n"
                  "print(s.server_address[1], flush=True)\n"
                  "s.serve_forever()\n")
        self.proc = subprocess.Popen(["ip", "netns", "exec", network.name, "python3", "-c", script, root],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        expect(line.isdigit(), f"feed server did not start (said {line!r})")
        self.port = int(line)

    def path(self, sub):
        return os.path.join(self.root, sub)

    def url(self, sub):
        return f"http://127.0.0.1:{self.port}/{sub}/"

    def assert_up(self, sub):
        expect(self.proc.poll() is None, "the feed server has exited")
        p = self.network.run(["curl", "--silent", "--fail", "--max-time", "10", self.url(sub) + "SHA256SUMS"],
                             check=False)
        expect(p.returncode == 0 and p.stdout.strip(), f"feed {self.url(sub)} does not serve SHA256SUMS: "
               f"curl exit {p.returncode} {p.stderr}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def feed_server(network, tmp_path_factory):
    s = FeedServer(network, str(tmp_path_factory.mktemp("feeds")))
    try:
        yield s
    finally:
        s.stop()


class FeedDir:
    def __init__(self, server, sub):
        self.sub = sub
        self.path = server.path(sub)
        self.url = server.url(sub)

    @property
    def transfer(self):
        with open(os.path.join(self.path, TRANSFER_FILE)) as f:
            return f.read()


@pytest.fixture(scope="session")
def make_feed(assembler, keepalived_x86_64, keepalived_aarch64, keys, feed_server, tmp_path_factory):
    binaries = {"x86-64": keepalived_x86_64, "arm64": keepalived_aarch64}
    markers = tmp_path_factory.mktemp("markers")

    def make(sub, versions, arches=("x86-64", "arm64"), sign="trusted"):
        path = feed_server.path(sub)
        expect(not os.path.exists(path), f"feed {sub} exists already")
        os.makedirs(path)
        url = feed_server.url(sub)
        for version in versions:
            mark = markers / version
            mark.write_text(version + "\n")
            for arch in arches:
                # As nix/release.nix does: one build per image into the one directory, which merges
                # SHA256SUMS and (re)writes the same transfer file.
                assembler_build(assembler, arch, binaries[arch], path, "--file", f"{MARKER}={mark}",
                                "--update-url", url, version=version)
        if sign:
            keys.sign(path, getattr(keys, sign))
        return FeedDir(feed_server, sub)

    return make


def copy_feed(feed, server, sub):
    """A copy of feed served as sub, its transfer file pointing at the copy."""
    dest = server.path(sub)
    shutil.copytree(feed.path, dest)
    new = FeedDir(server, sub)
    text = feed.transfer
    expect(f"Path={feed.url}" in text, f"the transfer file of {feed.sub} has no Path={feed.url}")
    with open(os.path.join(dest, TRANSFER_FILE), "w") as f:
        f.write(text.replace(f"Path={feed.url}", f"Path={new.url}"))
    return new
