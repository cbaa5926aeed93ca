//! `sysext-assembler diff` on real images: entry differences of every kind, superblock fields
//! and file areas when the entries match, and the exit codes (0 same bytes, 1 different).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn diff(a: &Path, b: &Path) -> (i32, String) {
    let output = run(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    (
        output.status.code().unwrap(),
        stdout(&output) + &stderr(&output),
    )
}

#[test]
fn identical_images_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let built = built_image(tmp.path());
    let copy = tmp.path().join("copy.raw");
    fs::copy(&built.image, &copy).unwrap();
    let (code, text) = diff(&built.image, &copy);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("byte-identical"), "{text}");
}

#[test]
fn entry_changes_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let a_payload = tmp.path().join("a");
    write_payload(&a_payload, "hello");
    fs::write(a_payload.join("usr/bin/gone"), "removed in b\n").unwrap();
    let b_payload = tmp.path().join("b");
    write_payload(&b_payload, "changed");
    fs::write(b_payload.join("usr/bin/new"), "added in b\n").unwrap();
    fs::set_permissions(
        b_payload.join("usr/bin/data"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_file(b_payload.join("usr/bin/hi")).unwrap();
    std::os::unix::fs::symlink("data", b_payload.join("usr/bin/hi")).unwrap();
    let a = build(
        &a_payload,
        &tmp.path().join("out-a"),
        "1.0",
        &["--epoch", "100"],
    );
    let b = build(
        &b_payload,
        &tmp.path().join("out-b"),
        "1.0",
        &["--epoch", "100"],
    );
    let (code, text) = diff(&a.image, &b.image);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("removed  /usr/bin/gone"), "{text}");
    assert!(text.contains("added    /usr/bin/new"), "{text}");
    assert!(
        text.contains("changed  /usr/bin/hello: size 21 -> 23; content sha256"),
        "{text}"
    );
    assert!(
        text.contains("changed  /usr/bin/data: mode 0644 -> 0755"),
        "{text}"
    );
    assert!(
        text.contains("changed  /usr/bin/hi: symlink target hello -> data"),
        "{text}"
    );
    assert!(
        !text.contains("/usr/lib/systemd/system/hello.service"),
        "unchanged entry listed:\n{text}"
    );
}

#[test]
fn mtime_changes_are_listed_including_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = tmp.path().join("p");
    write_payload(&payload, "hello");
    let a = build(
        &payload,
        &tmp.path().join("out-a"),
        "1.0",
        &["--epoch", "0"],
    );
    let b = build(
        &payload,
        &tmp.path().join("out-b"),
        "1.0",
        &["--epoch", "86400"],
    );
    let (code, text) = diff(&a.image, &b.image);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("changed  /: mtime 0 (1970-01-01 00:00:00) -> 86400 (1970-01-02 00:00:00)"),
        "{text}"
    );
    assert!(text.contains("changed  /usr/bin/hello: mtime 0"), "{text}");
    assert!(
        text.contains("mod_time: 0 (1970-01-01 00:00:00) -> 86400"),
        "{text}"
    );
}

#[test]
fn owner_changes_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_payload(&tree, "hello");
    let a = tmp.path().join("a.raw");
    let b = tmp.path().join("b.raw");
    mksquashfs(
        &tree,
        &a,
        &["-all-root", "-all-time", "0", "-mkfs-time", "0"],
    );
    mksquashfs(
        &tree,
        &b,
        &[
            "-force-uid",
            "1000",
            "-force-gid",
            "100",
            "-all-time",
            "0",
            "-mkfs-time",
            "0",
        ],
    );
    let (code, text) = diff(&a, &b);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("changed  /usr/bin/hello: owner 0:0 -> 1000:100"),
        "{text}"
    );
}

#[test]
fn same_entries_different_bytes_names_fields_and_areas() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_payload(&tree, "hello");
    let base = ["-all-root", "-all-time", "0"];
    let a = tmp.path().join("a.raw");
    mksquashfs(&tree, &a, &[&base[..], &["-mkfs-time", "0"]].concat());

    // Only the superblock time differs.
    let b = tmp.path().join("b.raw");
    mksquashfs(&tree, &b, &[&base[..], &["-mkfs-time", "5"]].concat());
    let (code, text) = diff(&a, &b);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("entries:"), "{text}");
    assert!(
        text.contains("mod_time: 0 (1970-01-01 00:00:00) -> 5"),
        "{text}"
    );
    assert!(text.contains("superblock: content differs"), "{text}");
    assert!(!text.contains("inode table"), "{text}");

    // Another compressor: the same entries, different data and tables.
    let c = tmp.path().join("c.raw");
    mksquashfs(
        &tree,
        &c,
        &[&base[..], &["-mkfs-time", "0", "-comp", "zstd"]].concat(),
    );
    let (code, text) = diff(&a, &c);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("entries:"), "{text}");
    assert!(text.contains("compressor: gzip -> zstd"), "{text}");
    assert!(text.contains("data blocks and fragments: "), "{text}");
    assert!(text.contains("same entries, different bytes"), "{text}");

    // Only the padding differs.
    let d = tmp.path().join("d.raw");
    mksquashfs(
        &tree,
        &d,
        &[&base[..], &["-mkfs-time", "0", "-nopad"]].concat(),
    );
    let (code, text) = diff(&a, &d);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("padding after bytes_used: only in a"),
        "{text}"
    );
    assert!(!text.contains("superblock:"), "{text}");
}

#[test]
fn diff_of_a_broken_image_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let built = built_image(tmp.path());
    let broken = tmp.path().join("broken.raw");
    let bytes = fs::read(&built.image).unwrap();
    fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let (code, text) = diff(&built.image, &broken);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("broken.raw is not a readable SquashFS image"),
        "{text}"
    );
}
