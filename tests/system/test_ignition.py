"""Provisioning without Butane: the config of `sysext-assembler butane --ignition` read by Debian's real
Ignition 2.14. ignition-validate accepts it and rejects corrupted copies; Ignition's stages apply it to a test
root, downloading the image from an HTTP feed on 127.0.0.1 and checking its sha512, and the root then holds
exactly what the Butane config says; a tampered image makes Ignition fail and leaves no image behind. Then
Boot: a root provisioned that way (Debian trixie with systemd 257, sid with 262) boots with the image merged,
keepalived running and the sysupdate timer, drop-in and transfer file in effect. Signed images: Ignition installs
the verity certificates and the systemd-sysext.service drop-in with the image policy, each certificate verifies
exactly its own key's PKCS#7 signature, and a booted root refuses the plain image under the default policy (and
with it every extension of the merge) and merges it under a policy that allows unprotected roots; a policy
tightened at run time refuses the next refresh but leaves the current merge until reboot."""

import base64
import json
import os
import re
import stat
import subprocess
import time
import urllib.parse
from dataclasses import dataclass

import pytest
import yaml

from support.common import expect, run
from support.ignition import (VALIDATE, feed_http, ignite, ignition_config,  # noqa: F401 (fixtures)
                              ignition_tools, prepare_root)

KEEPALIVED_CONF = """# keepalived.conf provisioned by Ignition in the system tests.
global_defs {
    router_id ignition-test
}
"""


# What every config of these tests provisions, besides the image under /opt/extensions/keepalived/.
PROVISIONED = (
    "etc/.ignition-result.json",
    "etc/extensions/keepalived.raw",
    "etc/keepalived/keepalived.conf",
    "etc/sysupdate.d/noop.conf",
    "etc/sysupdate.keepalived.d/keepalived.conf",
    "etc/systemd/import-pubring.gpg",
    "etc/systemd/system-preset/20-ignition.preset",
    "etc/systemd/system/systemd-sysupdate.service.d/keepalived.conf",
)


@pytest.fixture(scope="session")
def release(build_image, keepalived_x86_64, feed_http):
    """A feed directory as `build --update-url` writes it (image, manifest, SHA256SUMS, transfer file),
    served on 127.0.0.1."""
    url = feed_http.url("release")
    image = build_image("x86-64", keepalived_x86_64, "--update-url", url)
    feed_http.publish("release", os.path.dirname(image))
    name = os.path.basename(image)
    return {"url": url, "dir": feed_http.path("release"), "image": os.path.join(feed_http.path("release"), name),
            "manifest": os.path.join(feed_http.path("release"), name[:-len(".raw")] + ".manifest.json")}


@pytest.fixture(scope="session")
def pubring(tmp_path_factory):
    """A throwaway feed key: (binary public keyring, GNUPGHOME that holds the secret key)."""
    home = str(tmp_path_factory.mktemp("ignition-gnupg") / "home")
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--homedir", home, "--batch", "--no-tty"]
    run(gpg + ["--passphrase", "", "--quick-generate-key", "ignition test feed <feed@example.org>", "ed25519",
               "sign", "never"])
    p = subprocess.run(gpg + ["--export", "feed@example.org"], capture_output=True)
    expect(p.returncode == 0 and p.stdout, f"gpg --export: {p.stderr.decode(errors='replace')}")
    yield p.stdout, home
    run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)


def make_configs(assembler, manifest, url, key, out, *more):
    """Both outputs of `butane` with keepalived.conf and the key (and MORE options), for the feed at url:
    (Ignition config's path, the Butane config parsed)."""
    os.makedirs(out, exist_ok=True)
    conf = os.path.join(out, "keepalived.conf")
    with open(conf, "w") as f:
        f.write(KEEPALIVED_CONF)
    key_path = os.path.join(out, "feed.gpg")
    with open(key_path, "wb") as f:
        f.write(key)
    extra = ["--config", conf, "--signing-key", key_path, *more]
    ign = os.path.join(out, "keepalived.ign")
    ignition_config(assembler, manifest, url, ign, *extra)
    bu = ignition_config(assembler, manifest, url, os.path.join(out, "keepalived.bu"), *extra, ignition=False)
    return ign, yaml.safe_load(bu)


@pytest.fixture
def configs(assembler, release, pubring, tmp_path):
    return make_configs(assembler, release["manifest"], release["url"], pubring[0], str(tmp_path / "config"))


def validate(path):
    return run([VALIDATE, path], check=False)


@pytest.mark.parametrize("extras", [True, False], ids=["config-and-key", "bare"])
def test_ignition_validate_accepts_the_config(ignition_tools, assembler, release, pubring, tmp_path, extras):
    args = []
    if extras:
        (tmp_path / "k.conf").write_text(KEEPALIVED_CONF)
        (tmp_path / "k.gpg").write_bytes(pubring[0])
        args = ["--config", str(tmp_path / "k.conf"), "--signing-key", str(tmp_path / "k.gpg")]
    path = str(tmp_path / "c.ign")
    ignition_config(assembler, release["manifest"], release["url"], path, *args)
    p = validate(path)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (p.stdout, p.stderr)


def _set(doc, path, value):
    *parents, last = path
    for k in parents:
        doc = doc[k]
    doc[last] = value


# (id, path into the config, value, what ignition-validate must say)
CORRUPTIONS = [
    ("unknown-version", ("ignition", "version"), "3.9.0", "unsupported config version"),
    # What Butane's flatcar 1.1.0 would produce: Ignition 2.14 reads it only as 3.4.0-experimental.
    ("version-3.4.0", ("ignition", "version"), "3.4.0", "unsupported config version"),
    ("mode-as-string", ("storage", "files", 0, "mode"), "0644", "cannot unmarshal string"),
    ("hash-not-hex", ("storage", "files", 0, "contents", "verification", "hash"), "sha512-xyz", "hash"),
    ("relative-path", ("storage", "files", 1, "path"), "etc/sysupdate.d/x.conf", "absolute"),
]


@pytest.mark.parametrize("where,value,message", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_ignition_validate_rejects_a_corrupted_config(ignition_tools, configs, tmp_path, where, value, message):
    ign, _ = configs
    expect(validate(ign).returncode == 0, "the uncorrupted config must pass first")
    with open(ign) as f:
        doc = json.load(f)
    _set(doc, where, value)
    bad = tmp_path / "bad.ign"
    bad.write_text(json.dumps(doc))
    p = validate(str(bad))
    assert p.returncode != 0, f"ignition-validate accepted {where}={value!r}:\n{p.stdout}{p.stderr}"
    assert message in (p.stdout + p.stderr), p.stdout + p.stderr


def _data_url(url):
    head, _, data = url.partition(",")
    expect(head.startswith("data:"), f"not a data URL: {url[:40]}")
    if head.endswith(";base64"):
        return base64.b64decode(data)
    return urllib.parse.unquote_to_bytes(data)


def assert_root_matches_butane(root, bu, image):
    """Every directory, file, link and unit of the Butane config, as Ignition wrote it under root."""
    for d in bu["storage"]["directories"]:
        st = os.lstat(root + d["path"])
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == d["mode"], d["path"]
    for f in bu["storage"]["files"]:
        path = root + f["path"]
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode), f["path"]
        assert stat.S_IMODE(st.st_mode) == f["mode"], f"{f['path']}: mode {stat.S_IMODE(st.st_mode):o}"
        assert (st.st_uid, st.st_gid) == (0, 0), f["path"]
        with open(path, "rb") as fh:
            got = fh.read()
        contents = f["contents"]
        if "inline" in contents:
            assert got == contents["inline"].encode(), f["path"]
        elif contents["source"].startswith("data:"):
            assert got == _data_url(contents["source"]), f["path"]
        else:
            with open(image, "rb") as fh:
                assert got == fh.read(), f"{f['path']} is not the feed's image"
    for link in bu["storage"]["links"]:
        assert os.readlink(root + link["path"]) == link["target"], link["path"]
        assert os.path.isfile(root + link["target"]), f"{link['path']} points at nothing"
    with open(os.path.join(root, "etc/systemd/system-preset/20-ignition.preset")) as fh:
        preset = fh.read().splitlines()
    for unit in bu["systemd"]["units"]:
        if unit.get("enabled"):
            assert f"enable {unit['name']}" in preset, preset
        for dropin in unit.get("dropins", []):
            with open(os.path.join(root, "etc/systemd/system", unit["name"] + ".d", dropin["name"])) as fh:
                assert fh.read() == dropin["contents"], dropin["name"]


def _provisioned(root):
    """Regular files and links Ignition created under root, relative, sorted (the SELinux setup excluded)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.startswith("etc/selinux"):
            continue
        found += [os.path.normpath(os.path.join(rel, n)) for n in filenames]
        found += [os.path.normpath(os.path.join(rel, n)) for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
    return sorted(found)


def test_ignition_applies_the_config(ignition_tools, configs, release, pubring, feed_http, tmp_path):
    ign, bu = configs
    root = str(tmp_path / "root")
    prepare_root(root)
    result = ignite(root, ign, str(tmp_path / "work"))
    assert result.ok, result.log
    assert "file matches expected sum of" in result.log, result.log

    assert_root_matches_butane(root, bu, release["image"])
    # The points the README promises, spelled out.
    name = os.path.basename(release["image"])
    assert os.listdir(os.path.join(root, "opt/extensions/keepalived")) == [name]
    assert os.readlink(os.path.join(root, "etc/extensions/keepalived.raw")) == f"/opt/extensions/keepalived/{name}"
    with open(os.path.join(root, "etc/sysupdate.keepalived.d/keepalived.conf")) as f, \
            open(os.path.join(release["dir"], "keepalived.conf")) as want:
        assert f.read() == want.read(), "the transfer file differs from the one build wrote"
    assert stat.S_IMODE(os.stat(os.path.join(root, "etc/keepalived/keepalived.conf")).st_mode) == 0o600
    with open(os.path.join(root, "etc/systemd/import-pubring.gpg"), "rb") as f:
        assert f.read() == pubring[0]
    # The installed keyring verifies a signature by the feed key (what sysupdate's Verify=yes relies on).
    sums = os.path.join(release["dir"], "SHA256SUMS")
    sig = str(tmp_path / "SHA256SUMS.gpg")
    run(["gpg", "--homedir", pubring[1], "--batch", "--yes", "--detach-sign", "--output", sig, sums])
    run(["gpgv", "--keyring", os.path.join(root, "etc/systemd/import-pubring.gpg"), sig, sums])
    with open(os.path.join(root, "etc/systemd/system-preset/20-ignition.preset")) as f:
        # Ignition writes the lines in no fixed order.
        assert sorted(f.read().splitlines()) == ["enable systemd-sysupdate-update.timer",
                                                 "enable systemd-sysupdate.timer"]
    assert _provisioned(root) == sorted([
        *PROVISIONED,
        f"opt/extensions/keepalived/{name}",
    ])


def _config_without_verification(ign, out):
    with open(ign) as f:
        doc = json.load(f)
    del doc["storage"]["files"][0]["contents"]["verification"]
    with open(out, "w") as f:
        json.dump(doc, f)
    return out


def test_a_tampered_image_makes_ignition_fail_and_leaves_no_image(ignition_tools, assembler, release, pubring,
                                                                  feed_http, tmp_path):
    # A copy of the feed with one byte of the image changed, and a config for it: the manifest (and so the
    # sha512) of the real image, the URL of the copy.
    url = feed_http.publish("tampered", release["dir"])
    name = os.path.basename(release["image"])
    with open(os.path.join(feed_http.path("tampered"), name), "r+b") as f:
        f.seek(os.path.getsize(release["image"]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    served = feed_http.get(url + name)
    with open(release["image"], "rb") as f:
        original = f.read()
    expect(len(served) == len(original) and served != original, "the server does not serve the tampered image")
    ign, _ = make_configs(assembler, release["manifest"], url, pubring[0], str(tmp_path / "config"))

    root = str(tmp_path / "root")
    prepare_root(root)
    result = ignite(root, ign, str(tmp_path / "work"))
    assert not result.ok and result.failed_stage == "files", result.log
    assert "hash verification failed" in result.log, result.log
    images = os.path.join(root, "opt/extensions/keepalived")
    assert os.listdir(images) == [], f"left in {images}: {os.listdir(images)}"
    # Nothing of the image's size anywhere in the root (no temporary or partial copy elsewhere).
    sizes = {os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(root) for n in ns
             if not os.path.islink(os.path.join(d, n))}
    assert len(original) not in sizes
    # The link Ignition writes before the image (shallower paths first) leads nowhere: nothing to merge.
    assert not os.path.exists(root + os.readlink(os.path.join(root, "etc/extensions/keepalived.raw")))

    # Control: without the verification hash the same Ignition installs the tampered image, so it is the
    # sha512 from the manifest that stopped it above, not the server or the download.
    control = str(tmp_path / "control-root")
    prepare_root(control)
    result = ignite(control, _config_without_verification(ign, str(tmp_path / "nohash.ign")),
                    str(tmp_path / "control-work"))
    assert result.ok, result.log
    with open(os.path.join(control, "opt/extensions/keepalived", name), "rb") as f:
        assert f.read() == served


def test_the_root_ignition_provisioned_boots_with_the_image_merged(ignition_tools, assembler, release, pubring,
                                                                   root, boot, tmp_path):
    """Boot: a copy of a Debian root standing in for Flatcar (support.roots: systemd 257 or 262), provisioned
    by Ignition as above, boots in a container. systemd-sysext.service merges the image Ignition downloaded,
    keepalived.path is active and starts keepalived, the preset Ignition wrote enables the sysupdate timer and
    the drop-in applies to the sysupdate service (under its systemd 262 name too). support.results records the
root's systemd version with the outcome."""
    tree = root.copy(tmp_path / "tree")
    prepare_root(tree)
    # A machine Ignition provisions is on its first boot: systemd applies presets (Ignition's "enabled: true"
    # is a preset line) only then.
    with open(os.path.join(tree, "etc/machine-id"), "w") as f:
        f.write("uninitialized\n")
    # Debian drops upstream systemd's last preset rule, which Flatcar keeps: without it everything not
    # disabled is enabled at first boot and the preset Ignition writes would prove nothing.
    with open(os.path.join(tree, "usr/lib/systemd/system-preset/99-default.preset"), "w") as f:
        f.write("disable *\n")
    ign, bu = make_configs(assembler, release["manifest"], release["url"], pubring[0], str(tmp_path / "config"))
    result = ignite(tree, ign, str(tmp_path / "work"))
    assert result.ok, result.log
    assert_root_matches_butane(tree, bu, release["image"])
    expect(not os.path.exists(os.path.join(tree, "usr/bin/keepalived")), "the root already has a keepalived")

    # Generous: the machine's cores are shared, and a boot under load is slow.
    node = boot(tree, timeout=300)

    def active(unit):
        return node.run("systemctl", "is-active", unit, check=False).stdout.strip()

    def show(unit, prop):
        return node.run("systemctl", "show", f"--property={prop}", "--value", unit).stdout.strip()

    assert active("systemd-sysext.service") == "active", node.journal("systemd-sysext.service")
    merged = node.run("systemd-sysext", "list", "--no-legend", check=False).stdout
    assert "keepalived" in merged, merged
    release_file = node.run("cat", "/usr/lib/extension-release.d/extension-release.keepalived").stdout
    assert "ID=flatcar" in release_file, release_file
    assert active("keepalived.path") == "active", node.journal()
    # keepalived.conf is there, so the path unit starts the service: the image's static keepalived runs.
    deadline = time.monotonic() + 60
    while active("keepalived.service") != "active" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert active("keepalived.service") == "active", node.journal("keepalived.service")
    pid = show("keepalived.service", "MainPID")
    assert node.run("readlink", f"/proc/{pid}/exe").stdout.strip() == "/usr/bin/keepalived"
    # The timer under whatever name this systemd gives it (262: systemd-sysupdate-update.timer, with the
    # old name as an alias) is enabled, and the drop-in reaches the service.
    timer = show("systemd-sysupdate.timer", "Id")
    assert show(timer, "UnitFileState") == "enabled", (timer, node.run("systemctl", "list-unit-files",
                                                                       "systemd-sysupdate*").stdout)
    dropins = show("systemd-sysupdate.service", "DropInPaths")
    assert "/etc/systemd/system/systemd-sysupdate.service.d/keepalived.conf" in dropins.split(), dropins
    # sysupdate takes the image Ignition placed for the installed, current version of the component, so
    # later updates start from it (offline: the feed on the host's loopback is not reachable from here).
    listing = node.run("/usr/lib/systemd/systemd-sysupdate", "-C", "keepalived", "--offline", "list",
                       check=False)
    with open(release["manifest"]) as f:
        version = json.load(f)["version"]
    # "● 2.3.4  ✓  current": installed and current.
    assert listing.returncode == 0 and re.search(rf"^\W*{re.escape(version)}\s.*\bcurrent$", listing.stdout, re.M), \
        listing.stdout + listing.stderr


# Signed images: the certificates and the image policy `butane --verity-certificate` provisions.

STRICT = "root=signed+absent:usr=signed+absent"
# Lets a plain SquashFS image (an unprotected root) through as well as signed ones.
LENIENT = "root=signed+unprotected+absent:usr=signed+unprotected+absent"


@pytest.fixture(scope="session")
def verity_keys(tmp_path_factory):
    """Two throwaway signing keys, as a release engineer makes them (RSA, self-signed certificate):
    [(key path, certificate path)]."""
    d = tmp_path_factory.mktemp("verity-keys")
    keys = []
    for n in ("old", "new"):
        key, cert = str(d / f"{n}.key"), str(d / f"{n}.crt")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "3650", "-subj", f"/CN=keepalived-sysext test {n} key"])
        if n == "old":
            # As `openssl x509 -text` writes it: a dump before the PEM block; the node gets the PEM alone.
            dump = run(["openssl", "x509", "-in", cert, "-text"]).stdout
            expect(not dump.startswith("-----BEGIN"), "openssl x509 -text wrote no dump")
            with open(cert, "w") as f:
                f.write(dump)
        keys.append((key, cert))
    return keys


def openssl_pem(cert):
    return run(["openssl", "x509", "-in", cert]).stdout


def fingerprint(cert):
    out = run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def verity_configs(assembler, release, pubring, keys, out, policy=None):
    """make_configs plus --verity-certificate for each key (and --image-policy when given)."""
    more = [a for _, cert in keys for a in ("--verity-certificate", cert)]
    if policy:
        more += ["--image-policy", policy]
    return make_configs(assembler, release["manifest"], release["url"], pubring, out, *more)


def test_ignition_installs_the_verity_certificates_and_the_image_policy(ignition_tools, assembler, release, pubring,
                                                                        verity_keys, feed_http, tmp_path):
    # The feed's image is the plain SquashFS, which butane refuses under a policy that admits only signed images
    # (the node would merge nothing): the lenient policy lets it through.
    ign, bu = verity_configs(assembler, release, pubring[0], verity_keys, str(tmp_path / "config"), policy=LENIENT)
    p = validate(ign)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (p.stdout, p.stderr)
    root = str(tmp_path / "root")
    prepare_root(root)
    result = ignite(root, ign, str(tmp_path / "work"))
    assert result.ok, result.log
    assert_root_matches_butane(root, bu, release["image"])

    certs = []
    for key, cert in verity_keys:
        rel = f"etc/verity.d/keepalived-{fingerprint(cert)[:16]}.crt"
        path = os.path.join(root, rel)
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644 and (st.st_uid, st.st_gid) == (0, 0)
        with open(path) as f:
            assert f.read() == openssl_pem(cert), rel
        certs.append(rel)
    dropin = "etc/systemd/system/systemd-sysext.service.d/image-policy.conf"
    st = os.lstat(os.path.join(root, dropin))
    assert stat.S_IMODE(st.st_mode) == 0o644
    with open(os.path.join(root, dropin)) as f:
        lines = f.read().splitlines()
    assert lines[1:] == ["[Service]", "ExecStart=", f"ExecStart=systemd-sysext refresh --image-policy={LENIENT}",
                         "ExecReload=", f"ExecReload=systemd-sysext refresh --image-policy={LENIENT}"], lines
    conf = "etc/systemd/sysext.conf.d/image-policy.conf"
    assert stat.S_IMODE(os.lstat(os.path.join(root, conf)).st_mode) == 0o644
    with open(os.path.join(root, conf)) as f:
        assert f.read() == f"[SysExt]\nImagePolicy={LENIENT}\n"

    # What systemd does with a root hash signature (PKCS#7, detached, no attributes, over the hex root hash;
    # checked with PKCS7_NOINTERN|PKCS7_NOVERIFY), done by openssl with each installed certificate: it
    # accepts a signature by its own key and refuses one by the other key.
    content = str(tmp_path / "roothash")
    with open(content, "w") as f:
        f.write("ab" * 32)
    for i, (key, cert) in enumerate(verity_keys):
        sig = str(tmp_path / f"sig{i}.p7s")
        run(["openssl", "smime", "-sign", "-binary", "-noattr", "-outform", "DER", "-in", content, "-out", sig,
             "-signer", cert, "-inkey", key])
        for j, rel in enumerate(certs):
            p = run(["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content,
                     "-certfile", os.path.join(root, rel), "-nointern", "-noverify", "-out", "/dev/null"],
                    check=False)
            assert (p.returncode == 0) == (i == j), (i, j, p.stderr)

    assert _provisioned(root) == sorted([
        *PROVISIONED,
        dropin,
        conf,
        *certs,
        f"opt/extensions/keepalived/{os.path.basename(release['image'])}",
    ])


def _directory_extension(tree):
    """A directory extension in /var/lib/extensions: systemd-sysext merges directories without dissecting
    them, so no image policy applies to it."""
    ext = os.path.join(tree, "var/lib/extensions/plaindir")
    os.makedirs(os.path.join(ext, "usr/lib/extension-release.d"))
    os.makedirs(os.path.join(ext, "usr/share/plaindir"))
    with open(os.path.join(ext, "usr/lib/extension-release.d/extension-release.plaindir"), "w") as f:
        f.write("ID=flatcar\nSYSEXT_LEVEL=1.0\n")
    with open(os.path.join(ext, "usr/share/plaindir/marker"), "w") as f:
        f.write("merged\n")


def _assert_policy_in_unit(node, policy):
    """systemd reads the drop-in: `systemctl cat` lists it, and the service has one start and one reload
    command, the drop-in's (upstream's are reset), each with the policy."""
    cat = node.run("systemctl", "cat", "systemd-sysext.service").stdout
    assert "# /etc/systemd/system/systemd-sysext.service.d/image-policy.conf" in cat, cat
    for prop in ("ExecStart", "ExecReload"):
        shown = node.run("systemctl", "show", f"--property={prop}", "systemd-sysext.service").stdout
        assert shown.count("argv[]=") == 1 and f"argv[]=systemd-sysext refresh --image-policy={policy} " in shown, \
            shown


@dataclass
class PolicyBoot:
    node: object
    sysext_state: str  # systemd-sysext.service's ActiveState after the boot
    sysext_journal: str
    image_merged: bool
    dir_merged: bool


def _boot_under_policy(policy, assembler, release, pubring, verity_keys, root, boot, tmp_path):
    """A copy of ROOT provisioned by Ignition with a verity certificate and an image policy, booted. Its
    extensions are this project's plain SquashFS image (no partition table, no dm-verity) and a directory
    extension. butane refuses the strict policy with a plain image, so the node is provisioned with the
    lenient one and, for STRICT, the policy is tightened in its files before the first boot, as an
    administrator could. Returns what the boot left: a `PolicyBoot`."""
    tree = root.copy(tmp_path / "tree")
    prepare_root(tree)
    _directory_extension(tree)
    ign, _ = verity_configs(assembler, release, pubring[0], verity_keys[:1], str(tmp_path / "config"),
                            policy=LENIENT)
    result = ignite(tree, ign, str(tmp_path / "work"))
    assert result.ok, result.log
    if policy == STRICT:
        for rel in ("etc/systemd/system/systemd-sysext.service.d/image-policy.conf",
                    "etc/systemd/sysext.conf.d/image-policy.conf"):
            path = os.path.join(tree, rel)
            with open(path) as f:
                text = f.read()
            expect(LENIENT in text, f"{rel} holds no policy to tighten")
            with open(path, "w") as f:
                f.write(text.replace(LENIENT, STRICT))
    node = boot(tree, timeout=300)

    state = node.run("systemctl", "is-active", "systemd-sysext.service", check=False).stdout.strip()
    journal = node.journal("systemd-sysext.service")
    merged = node.run("test", "-e", "/usr/lib/extension-release.d/extension-release.keepalived",
                      check=False).returncode == 0
    dir_merged = node.run("test", "-e", "/usr/share/plaindir/marker", check=False).returncode == 0
    return PolicyBoot(node, state, journal, merged, dir_merged)


def test_a_strict_image_policy_refuses_the_plain_image(ignition_tools, assembler, release, pubring, verity_keys,
                                                       root, boot, tmp_path):
    """The default policy (signed images only) refuses the plain image at boot, and with it every other
    extension of the same merge; without the image, the directory extension merges under the same policy.
    Signed images need device-mapper, which containers lack: that side is the VM test's (test_verity.py)."""
    booted = _boot_under_policy(STRICT, assembler, release, pubring, verity_keys, root, boot, tmp_path)
    node, journal = booted.node, booted.sysext_journal
    assert booted.sysext_state == "failed", (booted.sysext_state, journal)
    # "/etc/extensions/keepalived.raw: Image does not match image policy." (257), the link's target (262).
    assert re.search(r"^/\S+/keepalived\S*\.raw: Image does not match image policy\.$", journal, re.M), journal
    assert not booted.image_merged and not booted.dir_merged, "a refused image must stop the whole merge"
    _assert_policy_in_unit(node, STRICT)
    # By hand: systemd 259 and later take the policy from sysext.conf.d and refuse too; 257 has only the
    # command line, so a bare `systemd-sysext refresh` merges the unsigned image.
    by_hand = node.run("systemd-sysext", "refresh", check=False)
    if root.systemd_major >= 259:
        assert by_hand.returncode != 0 and "Image does not match image policy" in by_hand.stderr, by_hand.stderr
        assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode != 0
    else:
        assert by_hand.returncode == 0, by_hand.stderr
        assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode == 0
        node.run("systemd-sysext", "unmerge")
    # Without the refused image, the directory extension merges under the same strict policy: the policy
    # covers disk images only.
    node.run("rm", "/etc/extensions/keepalived.raw")
    node.run("systemctl", "restart", "systemd-sysext.service")
    assert node.run("cat", "/usr/share/plaindir/marker").stdout == "merged\n"
    assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode != 0


def test_a_lenient_image_policy_merges_the_plain_image_until_tightened(ignition_tools, assembler, release,
                                                                       pubring, verity_keys, root, boot, tmp_path):
    """A policy that allows unprotected roots merges the plain image, so it is the policy that refused it in
    the strict test. The policy is checked when images are merged, not after: tightened at run time, a reload
    is refused and keeps the merge, and the next boot merges nothing."""
    booted = _boot_under_policy(LENIENT, assembler, release, pubring, verity_keys, root, boot, tmp_path)
    node = booted.node
    assert booted.sysext_state == "active" and booted.image_merged and booted.dir_merged, \
        (booted.sysext_state, booted.sysext_journal)
    _assert_policy_in_unit(node, LENIENT)
    # A reload runs the drop-in's refresh, with the policy, and merges again.
    node.run("systemctl", "reload", "systemd-sysext.service")
    assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode == 0
    # Tightened at run time, a reload (refresh) is refused and leaves the current merge in place; the next
    # boot merges nothing.
    node.sh("sed -i 's/=" + LENIENT + "/=" + STRICT + "/' "
            "/etc/systemd/system/systemd-sysext.service.d/image-policy.conf "
            "/etc/systemd/sysext.conf.d/image-policy.conf && systemctl daemon-reload")
    _assert_policy_in_unit(node, STRICT)
    assert node.run("systemctl", "reload", "systemd-sysext.service", check=False).returncode != 0
    assert "Image does not match image policy" in node.journal("systemd-sysext.service")
    assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode == 0, "the merge was undone"
    node.reboot(timeout=300)
    assert node.run("systemctl", "is-active", "systemd-sysext.service", check=False).stdout.strip() == "failed"
    assert node.run("test", "-e", "/usr/bin/keepalived", check=False).returncode != 0
