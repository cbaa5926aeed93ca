//! `sysext-assembler diff` on real images: entry differences of every kind, superblock fields
//! and file areas when the entries match, and the exit codes (0 same bytes, 1 different).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn diff(a: &Path, b: &Path) -> (i32, String) {
    let output = cli(&[&"diff", &a, &b]);
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    (
        output.status.code().unwrap(),
        stdout(&output) + &stderr(&output),
    )
}

/// The report of `diff` between hello built from the payload and at the epoch of `a` and of `b`
/// (into TMP/out-a and TMP/out-b), which must differ: exit 1.
fn diff_of_builds(tmp: &Path, a: (&Path, u64), b: (&Path, u64)) -> String {
    let [a, b] = [(a, "out-a"), (b, "out-b")].map(|((payload, epoch), out)| {
        Build::hello(payload, &tmp.join(out))
            .epoch(epoch)
            .run()
            .image
    });
    let (code, text) = diff(&a, &b);
    assert_eq!(code, 1, "{text}");
    text
}

#[test]
fn identical_images_exit_0() {
    let (tmp, built) = hello_feed();
    let copy = tmp.path().join("copy.raw");
    fs::copy(&built.image, &copy).unwrap();
    let (code, text) = diff(&built.image, &copy);
    assert_eq!(code, 0, "{text}");
    assert_contains(&text, &["byte-identical"]);
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
    let text = diff_of_builds(tmp.path(), (&a_payload, 100), (&b_payload, 100));
    assert_contains(
        &text,
        &[
            "removed  /usr/bin/gone",
            "added    /usr/bin/new",
            "changed  /usr/bin/hello: size 21 -> 23; content sha256",
            "changed  /usr/bin/data: mode 0644 -> 0755",
            "changed  /usr/bin/hi: symlink target hello -> data",
        ],
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
    let text = diff_of_builds(tmp.path(), (&payload, 0), (&payload, 86400));
    assert_contains(
        &text,
        &[
            "changed  /: mtime 0 (1970-01-01 00:00:00) -> 86400 (1970-01-02 00:00:00)",
            "changed  /usr/bin/hello: mtime 0",
            "mod_time: 0 (1970-01-01 00:00:00) -> 86400",
        ],
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
    assert_contains(&text, &["changed  /usr/bin/hello: owner 0:0 -> 1000:100"]);
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
    assert_contains(
        &text,
        &[
            "mod_time: 0 (1970-01-01 00:00:00) -> 5",
            "superblock: content differs",
        ],
    );
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
    assert_contains(
        &text,
        &[
            "compressor: gzip -> zstd",
            "data blocks and fragments: ",
            "same entries, different bytes",
        ],
    );

    // Only the padding differs.
    let d = tmp.path().join("d.raw");
    mksquashfs(
        &tree,
        &d,
        &[&base[..], &["-mkfs-time", "0", "-nopad"]].concat(),
    );
    let (code, text) = diff(&a, &d);
    assert_eq!(code, 1, "{text}");
    assert_contains(&text, &["padding after bytes_used: only in a"]);
    assert!(!text.contains("superblock:"), "{text}");
}

#[test]
fn diff_of_a_broken_image_exits_2_naming_it() {
    let (tmp, built) = hello_feed();
    let broken = tmp.path().join("broken.raw");
    let bytes = fs::read(&built.image).unwrap();
    fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let (code, text) = diff(&built.image, &broken);
    assert_eq!(code, 2, "{text}");
    assert_contains(
        &text,
        &[&format!(
            "{} is not a readable SquashFS image",
            broken.display()
        )],
    );
}
