//! Tests that need root (their names start with `root_`; Nix's check phase skips them by exact
//! name, see nix/sysext-assembler.nix; anywhere else they fail, not skip, when root or a tool is
//! missing).
//!
//! The main one hands the image to the Linux kernel through the real `systemd-sysext merge` into
//! a fake root whose os-release matches, the way a Flatcar host does at boot.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// The mount points of a /proc/self/mountinfo, with their sources: what a leaked mount changes.
fn mount_points(mountinfo: &str) -> Vec<String> {
    let mut points: Vec<String> = mountinfo
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // mount point, then what follows the " - " separator: type and source
            let separator = fields
                .iter()
                .position(|f| *f == "-")
                .unwrap_or(fields.len());
            format!("{} {}", fields[4], fields[separator..].join(" "))
        })
        .collect();
    points.sort();
    points
}

/// Builds the keepalived-like payload, merges it with systemd-sysext into a fake root and checks
/// that ROOT/usr shows the payload, byte for byte, with the image's modes.
#[test]
fn root_systemd_sysext_merges_image() {
    require_root();
    for tool in ["unshare", "mount", "systemd-sysext", "sha256sum", "find"] {
        require_tool(tool);
    }
    // The compressors, and xz with the host's BCJ filter and 1 MiB blocks.
    let bcj = if host_arch() == "arm64" {
        "arm64"
    } else {
        "x86"
    };
    for settings in [
        vec!["--compression", "xz"],
        vec!["--compression", "zstd"],
        vec!["--compression", "gzip"],
        vec![
            "--compression",
            "xz",
            "--block-size",
            "1M",
            "--xz-filter",
            bcj,
        ],
    ] {
        let compression = settings.join(" ");
        let dir = tempdir();
        let payload = dir.path().join("payload");
        let mut rng = Rng::new(7);
        let mut binary = rng.bytes(150_000);
        binary.extend(rng.text(400_000));
        binary.extend(branchy_code(host_arch(), 300_000));
        materialise(
            &payload,
            &[
                (
                    "usr/lib/systemd/system/keepalived.service".into(),
                    Spec::file(b"[Service]\nExecStart=/usr/bin/keepalived --dont-fork\n".to_vec()),
                ),
                (
                    "usr/lib/systemd/system/multi-user.target.d/10-keepalived.conf".into(),
                    Spec::file(b"[Unit]\nUpholds=keepalived.service\n".to_vec()),
                ),
                (
                    "usr/share/keepalived/doc".into(),
                    Spec::Symlink("../../lib/systemd".into()),
                ),
            ],
        );
        let binary_path = dir.path().join("keepalived");
        fs::write(&binary_path, &binary).unwrap();
        fs::set_permissions(&binary_path, fs::Permissions::from_mode(0o755)).unwrap();
        let built = Build::new(&dir.path().join("out"))
            .name("keepalived")
            .version("2.3.4")
            .arch(host_arch())
            .epoch(1_700_000_000)
            .tree(&payload)
            .file("usr/bin/keepalived", &binary_path)
            .args(["--os", "flatcar", "--reload-manager"])
            .args(&settings)
            .run();

        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("var/lib/extensions")).unwrap();
        fs::write(
            root.join("usr/lib/os-release"),
            "ID=flatcar\nVERSION_ID=4152.2.0\nSYSEXT_LEVEL=1.0\n",
        )
        .unwrap();
        fs::copy(&built.image, root.join("var/lib/extensions/keepalived.raw")).unwrap();

        // systemd-sysext needs /run to be a mount point and its final mount to propagate back
        // into the namespace we inspect, so everything happens inside one unshare. The namespace
        // starts private (nothing done in it reaches the host, whose / is usually shared) and is
        // made shared inside, for systemd-sysext's own propagation.
        let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let script = r#"set -e
mount --make-rshared /
mount --bind /run /run
mount --make-shared /run
systemd-sysext --root="$1" merge
cd "$1"
find usr -printf '%y %m %p %l\n' | LC_ALL=C sort
echo ---
find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
cd /
systemd-sysext --root="$1" unmerge
"#;
        let output = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&root)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{compression}: merge failed:\n{}\n{stdout}",
            stderr(&output)
        );
        let (listing, sums) = stdout.split_once("---\n").unwrap();
        for line in [
            "f 755 usr/bin/keepalived ",
            "f 644 usr/lib/extension-release.d/extension-release.keepalived ",
            "f 644 usr/lib/systemd/system/keepalived.service ",
            "f 644 usr/lib/systemd/system/multi-user.target.d/10-keepalived.conf ",
            "l 777 usr/share/keepalived/doc ../../lib/systemd",
            "f 644 usr/lib/os-release ",
        ] {
            assert!(
                listing.lines().any(|l| l == line),
                "{compression}: {line:?} missing from\n{listing}"
            );
        }
        let binary_sha = sysext_assembler::hex(&<sha2::Sha256 as sha2::Digest>::digest(&binary));
        assert!(
            sums.contains(&format!("{binary_sha}  usr/bin/keepalived")),
            "{compression}:\n{sums}"
        );
        assert_eq!(
            mount_points(&fs::read_to_string("/proc/self/mountinfo").unwrap()),
            mount_points(&host_mounts),
            "{compression}: the merge changed the host's mount table"
        );
        // After unmerge the fake root is as before.
        assert!(!root.join("usr/bin/keepalived").exists());
    }
}

#[test]
fn root_device_nodes_are_refused() {
    require_root();
    require_tool("mknod");
    for (kind, what) in [("c", "character device"), ("b", "block device")] {
        let dir = tempdir();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("usr/lib")).unwrap();
        let status = Command::new("mknod")
            .arg(tree.join("usr/lib/dev"))
            .args([kind, "1", "3"])
            .status()
            .unwrap();
        assert!(status.success());
        Build::new(&dir.path().join("out")).tree(&tree).refused(&[
            &format!("usr/lib/dev: is a {what}"),
            "a system extension may hold only directories, regular files and symlinks",
            "Remove it from the payload",
        ]);
    }
}

/// Owners of the inputs (which only root can vary) do not reach the image.
#[test]
fn root_determinism_ignores_owners() {
    require_root();
    let dir = tempdir();
    let mut rng = Rng::new(99);
    let entries: Vec<(String, Spec)> = (0..12)
        .map(|i| {
            let size = rng.below(200_000) as usize;
            (
                format!("usr/lib/own/d{}/f{i}", i % 3),
                Spec::File {
                    contents: rng.text(size),
                    executable: i % 2 == 0,
                },
            )
        })
        .collect();
    let build = |tree: &Path, out: &Path| {
        let built = Build::new(out).name("own").epoch(5).tree(tree).run();
        fs::read(built.image).unwrap()
    };
    let a = dir.path().join("a");
    materialise(&a, &entries);
    let b = dir.path().join("b");
    materialise(&b, &entries);
    for entry in walkdir::WalkDir::new(&b) {
        let entry = entry.unwrap();
        let uid = 1000 + rng.below(60_000) as u32;
        let gid = 1000 + rng.below(60_000) as u32;
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid)).unwrap();
    }
    assert!(build(&a, &dir.path().join("out-a")) == build(&b, &dir.path().join("out-b")));
}

/// The kernel's own SquashFS xz decoder reads images whose data blocks carry a BCJ filter and
/// 1 MiB blocks, for both architectures' filters (the decoder runs whatever the CPU: an arm64
/// image mounts on x86-64): each file reads back byte for byte through a loop mount.
#[test]
fn root_kernel_reads_bcj_filtered_images() {
    require_root();
    for tool in ["unshare", "mount", "cmp"] {
        require_tool(tool);
    }
    let dir = tempdir();
    for (arch, filter) in [("x86-64", "x86"), ("arm64", "arm64")] {
        let payload = dir.path().join(format!("payload-{arch}"));
        fs::create_dir_all(payload.join("usr/bin")).unwrap();
        fs::write(payload.join("usr/bin/code"), branchy_code(arch, 3_000_000)).unwrap();
        fs::write(payload.join("usr/bin/text"), Rng::new(3).text(200_000)).unwrap();
        let built = Build::new(&dir.path().join(format!("out-{arch}")))
            .arch(arch)
            .tree(&payload)
            .args(["--block-size", "1M", "--xz-filter", filter])
            .run();
        let mountpoint = dir.path().join(format!("mnt-{arch}"));
        fs::create_dir_all(&mountpoint).unwrap();
        let script = r#"set -e
mount -t squashfs -o loop,ro "$1" "$2"
cmp "$2/usr/bin/code" "$3/usr/bin/code"
cmp "$2/usr/bin/text" "$3/usr/bin/text"
umount "$2"
"#;
        let output = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&built.image)
            .arg(&mountpoint)
            .arg(&payload)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{arch}: the kernel did not read the {filter}-filtered image back:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
    }
}
