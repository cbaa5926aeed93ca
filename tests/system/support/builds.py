"""Session fixtures for what every system test starts from: the release build of the assembler, the static
keepalived binaries of tests/e2e/build-keepalived (cached under /var/cache/keepalived-sysext, keyed by
their inputs), and images built from them with `sysext-assembler build` and the payload in files/.

The older, test-only keepalived (tests/e2e/sources.json's testVersions, e.g. 2.2.7; never shipped) comes
from the same script (`build-keepalived ARCH VERSION`), for the tests that need two real versions.

Environment: SYSEXT_ASSEMBLER (a built sysext-assembler; default: cargo build --release --locked),
KEEPALIVED_BIN_X86_64 / KEEPALIVED_BIN_AARCH64 (use these binaries instead of building),
KEEPALIVED_OLD_BIN_X86_64 / KEEPALIVED_OLD_BIN_AARCH64 (the same for the older version)."""

import glob
import json
import os

import pytest

from support.common import E2E, PAYLOAD, REPO, expect, keepalived_version, old_keepalived_version, run

# The two architectures the project ships: (keepalived build name, sysext ARCHITECTURE).
ARCHES = {"x86_64": "x86-64", "aarch64": "arm64"}


@pytest.fixture(scope="session")
def assembler():
    path = os.environ.get("SYSEXT_ASSEMBLER")
    if not path:
        run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, timeout=3600)
        # Where cargo put it: CARGO_TARGET_DIR or a config may move the target directory.
        metadata = run(["cargo", "metadata", "--locked", "--format-version", "1", "--no-deps"], cwd=REPO).stdout
        path = os.path.join(json.loads(metadata)["target_directory"], "release", "sysext-assembler")
    expect(os.access(path, os.X_OK), f"sysext-assembler not executable at {path}")
    return path


def _keepalived(arch, version=None, env_prefix="KEEPALIVED_BIN"):
    """The static keepalived for ARCH: the data file's default, or VERSION (a test-only version)."""
    path = os.environ.get(f"{env_prefix}_{arch.upper()}")
    if not path:
        cmd = [os.path.join(E2E, "build-keepalived"), arch, *([version] if version else [])]
        path = run(cmd, timeout=3600).stdout.strip().splitlines()[-1]
    expect(os.path.isabs(path) and os.access(path, os.X_OK), f"not an executable absolute path: {path!r}")
    return path


@pytest.fixture(scope="session")
def keepalived_x86_64():
    return _keepalived("x86_64")


@pytest.fixture(scope="session")
def keepalived_aarch64():
    return _keepalived("aarch64")


@pytest.fixture(scope="session")
def keepalived_x86_64_old():
    """The older, test-only keepalived (support.common.old_keepalived_version()) for x86-64."""
    return _keepalived("x86_64", old_keepalived_version(), "KEEPALIVED_OLD_BIN")


@pytest.fixture(scope="session")
def keepalived_aarch64_old():
    return _keepalived("aarch64", old_keepalived_version(), "KEEPALIVED_OLD_BIN")


def assembler_build(assembler, arch, binary, out, *extra, version=None):
    """`sysext-assembler build` of the keepalived image as the flake builds it (files/ and the static
    binary, for Flatcar, with the reload manager and keepalived-sysext-merged.service restarted by systemd
    262's sysext after a merge) into OUT, with EXTRA options."""
    run([assembler, "build", "--name", "keepalived", "--version", version or keepalived_version(),
         "--arch", arch, "--out", str(out), "--tree", PAYLOAD, "--file", f"usr/bin/keepalived={binary}",
         "--os", "flatcar", "--reload-manager", "--restart-unit", "keepalived-sysext-merged.service", *extra])


@pytest.fixture(scope="session")
def build_image(assembler, tmp_path_factory):
    """build_image(arch, binary, *extra, version=...) -> path of the .raw in a fresh output directory."""

    def build(arch, binary, *extra, version=None):
        out = tmp_path_factory.mktemp(f"image-{arch}")
        assembler_build(assembler, arch, binary, out, *extra, version=version)
        images = glob.glob(os.path.join(out, "*.raw"))
        expect(len(images) == 1, f"expected exactly one .raw image in {out}, found {os.listdir(out)}")
        return images[0]

    return build


@pytest.fixture(scope="session")
def image_x86_64(build_image, keepalived_x86_64):
    return build_image("x86-64", keepalived_x86_64)


@pytest.fixture(scope="session")
def image_arm64(build_image, keepalived_aarch64):
    return build_image("arm64", keepalived_aarch64)
