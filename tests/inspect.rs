//! `sysext-assembler inspect` against an independent reader: Debian's `unsquashfs -lln` must
//! list the same entries with the same type, mode, owner, size, mtime and symlink target.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use serde_json::Value;

/// (mode string, "uid/gid", size or None for non-files, "YYYY-MM-DD HH:MM", path, target)
type Row = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
);

/// Splits an `ls -l`-style line from the end, since device numbers take a varying number of
/// fields: mode, owner, size (files only), "date HH:MM" (seconds dropped), path as printed, target.
fn split_row(line: &str) -> Row {
    let (main, target) = match line.split_once(" -> ") {
        Some((main, target)) => (main, Some(target.to_string())),
        None => (line, None),
    };
    let f: Vec<&str> = main.split_whitespace().collect();
    let n = f.len();
    let size = f[0].starts_with('-').then(|| f[2].to_string());
    let when = format!("{} {}", f[n - 3], &f[n - 2][..5]);
    (
        f[0].to_string(),
        f[1].to_string(),
        size,
        when,
        f[n - 1].to_string(),
        target,
    )
}

fn unsquashfs_rows(image: &std::path::Path) -> Vec<Row> {
    unsquashfs(&[&"-lln", &"-d", &"ROOT", &image])
        .lines()
        .filter(|l| l.contains(" ROOT"))
        .map(|line| {
            let mut row = split_row(line);
            row.4 = row.4.strip_prefix("ROOT").unwrap().to_string();
            if row.4.is_empty() {
                row.4 = "/".to_string();
            }
            row
        })
        .collect()
}

fn inspect_rows(image: &std::path::Path) -> Vec<Row> {
    let output = cli(&[&"inspect", &image]);
    expect_status(&output, 0);
    stdout(&output)
        .lines()
        .filter(|l| l.contains(" /"))
        .filter(|l| {
            l.starts_with(['d', '-', 'l', 'c', 'b', 'p', 's']) && !l.starts_with("squashfs")
        })
        .map(split_row)
        .collect()
}

#[test]
fn inspect_agrees_with_unsquashfs_on_a_built_image() {
    let (_tmp, built) = hello_feed();
    let ours = inspect_rows(&built.image);
    assert_eq!(ours.len(), 12, "root and 11 entries: {ours:#?}");
    assert_eq!(ours, unsquashfs_rows(&built.image));
}

#[test]
fn root_inspect_agrees_with_unsquashfs_on_a_foreign_image() {
    // Owners, odd modes, a fifo, a device node, an empty dir and small block size, as
    // mksquashfs writes them.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("opt/empty")).unwrap();
    fs::create_dir_all(tree.join("usr/share")).unwrap();
    for i in 0..40 {
        fs::write(tree.join(format!("usr/share/f{i:02}")), "x".repeat(i * 300)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        tree.join("usr/share/f07"),
        fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    std::os::unix::fs::symlink("../share/f01", tree.join("usr/link")).unwrap();
    let status = Command::new("mkfifo")
        .arg(tree.join("usr/fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("mknod")
        .arg(tree.join("usr/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(status.success(), "mknod needs root");
    let image = tmp.path().join("foreign.raw");
    mksquashfs(
        &tree,
        &image,
        &[
            "-b",
            "4096",
            "-comp",
            "gzip",
            "-force-uid",
            "1234",
            "-all-time",
            "86400",
            "-mkfs-time",
            "86400",
        ],
    );
    let ours = inspect_rows(&image);
    assert_eq!(ours, unsquashfs_rows(&image));
    assert!(ours.iter().any(|r| r.0 == "-rwsr-x---"), "{ours:#?}");
    assert!(ours.iter().any(|r| r.0.starts_with('p')), "{ours:#?}");
    assert!(ours.iter().any(|r| r.0.starts_with('c')), "{ours:#?}");
}

#[test]
fn inspect_json_has_entries_hashes_and_extension_release() {
    let (_tmp, built) = hello_feed();
    let output = cli(&[&"inspect", &"--json", &built.image]);
    expect_status(&output, 0);
    let json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["image"]["sha256"], sha256sum(&built.image));
    assert_eq!(json["superblock"]["compression"], "xz");
    assert_eq!(json["superblock"]["mod_time"], 1_700_000_000);
    assert_eq!(json["root"]["mode"], "0755");
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(&built.manifest).unwrap()).unwrap();
    let entries = json["entries"].as_array().unwrap();
    let wanted = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), wanted.len());
    for (got, want) in entries.iter().zip(wanted) {
        for key in ["path", "type", "mode", "size", "sha256", "target"] {
            assert_eq!(got[key], want[key], "{key} of {}", want["path"]);
        }
        assert_eq!(got["uid"], 0);
        assert_eq!(got["mtime"], 1_700_000_000);
    }
    let release = &json["extension_release"][0];
    assert_eq!(
        release["path"],
        "usr/lib/extension-release.d/extension-release.hello"
    );
    let fields: Vec<(String, String)> = release["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().into(),
                kv[1].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        fields.contains(&("ARCHITECTURE".into(), "x86-64".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("ID".into(), "flatcar".into())),
        "{fields:?}"
    );
}

#[test]
fn inspect_of_a_non_image_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notes.txt");
    fs::write(&path, "not an image at all, but long enough to hold a superblock's worth of bytes, surely more than ninety-six").unwrap();
    let output = cli(&[&"inspect", &path]);
    expect_error_naming(
        &output,
        &[&format!(
            "{} is not a readable SquashFS image: it does not start with the SquashFS magic \"hsqs\"",
            path.display()
        )],
    );
}

#[test]
fn a_malformed_extension_release_is_shown_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib/extension-release.d")).unwrap();
    fs::write(
        tree.join("usr/lib/extension-release.d/extension-release.odd"),
        "ID=_any\nthis line has no equals sign\n",
    )
    .unwrap();
    let image = tmp.path().join("odd.raw");
    mksquashfs(&tree, &image, &["-all-root"]);
    let output = cli(&[&"inspect", &image]);
    expect_stdout(&output, 0, &["cannot be parsed: line 2"]);
    let output = cli(&[&"inspect", &"--json", &image]);
    expect_status(&output, 0);
    let json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(json["extension_release"][0]["error"]
        .as_str()
        .unwrap()
        .contains("line 2"));
}
