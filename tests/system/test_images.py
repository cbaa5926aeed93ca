"""The images every other system test starts from: both architectures build and carry the binary."""

from support.common import run


def test_x86_64_image_holds_keepalived(image_x86_64):
    assert "squashfs-root/usr/bin/keepalived" in run(["unsquashfs", "-lls", image_x86_64]).stdout


def test_arm64_image_holds_keepalived(image_arm64):
    assert "squashfs-root/usr/bin/keepalived" in run(["unsquashfs", "-lls", image_arm64]).stdout
