//! Every refusal of `build`: exit status 2, a message naming the path and the reason, and no
//! output (nor temporary file) left in the output directory.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn tree_with(dir: &Path, entries: &[(&str, Spec)]) -> String {
    let root = dir.join("tree");
    let entries: Vec<(String, Spec)> = entries
        .iter()
        .map(|(p, s)| (p.to_string(), s.clone()))
        .collect();
    materialise(&root, &entries);
    root.to_str().unwrap().to_string()
}

fn file(contents: &str) -> Spec {
    Spec::File {
        contents: contents.as_bytes().to_vec(),
        executable: false,
    }
}

#[test]
fn top_level_outside_usr_and_opt() {
    let dir = tempdir();
    let tree = tree_with(
        dir.path(),
        &[
            ("usr/bin/x", file("x")),
            ("etc/keepalived/keepalived.conf", file("c")),
        ],
    );
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", &tree],
        &["etc", "outside usr/ and opt/"],
    );
    let src = dir.path().join("src");
    fs::write(&src, "x").unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--file", &format!("var/lib/x={}", src.display())],
        &["var/lib/x", "outside usr/ and opt/"],
    );
    // usr itself must be a directory
    let tree2 = dir.path().join("tree2");
    fs::create_dir(&tree2).unwrap();
    fs::write(tree2.join("usr"), "not a dir").unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&tree2)],
        &["usr", "must be a directory"],
    );
}

#[test]
fn usr_sbin_is_refused() {
    let dir = tempdir();
    let tree = tree_with(
        dir.path(),
        &[(
            "usr/sbin/keepalived",
            Spec::File {
                contents: b"elf".to_vec(),
                executable: true,
            },
        )],
    );
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", &tree],
        &["usr/sbin", "symlink to bin", "usr/bin/"],
    );
    let src = dir.path().join("keepalived");
    fs::write(&src, "elf").unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--file", &format!("usr/sbin/keepalived={}", src.display())],
        &["usr/sbin/keepalived", "symlink to bin"],
    );
    // an empty usr/sbin directory hides the host's /usr/sbin just as well
    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("usr/sbin")).unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&empty)],
        &["usr/sbin", "symlink to bin"],
    );
}

#[test]
fn fifos_and_sockets_are_refused() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib")).unwrap();
    require_tool("mkfifo");
    let status = std::process::Command::new("mkfifo")
        .arg(tree.join("usr/lib/fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&tree)],
        &["usr/lib/fifo", "fifo"],
    );
    fs::remove_file(tree.join("usr/lib/fifo")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(tree.join("usr/lib/sock")).unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&tree)],
        &["usr/lib/sock", "socket"],
    );
}

/// Named chmod_setuid_*: Nix's build sandbox forbids setting setuid and setgid bits, so the Nix
/// check phase skips this test by its exact name (nix/sysext-assembler.nix); tests/run runs it.
#[test]
fn chmod_setuid_setuid_and_setgid_are_refused() {
    for (mode, bit) in [(0o4755, "setuid"), (0o2755, "setgid")] {
        let dir = tempdir();
        let tree = dir.path().join("tree");
        let full = tree.join("usr/bin/x");
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, "x").unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
        assert_build_refused(
            &dir.path().join("out"),
            &["--tree", path_str(&tree)],
            &["usr/bin/x", bit],
        );
        assert_build_refused(
            &dir.path().join("out"),
            &["--file", &format!("usr/bin/y={}", full.display())],
            &["usr/bin/y", bit],
        );
    }
}

#[test]
fn sticky_directories_are_refused() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    let full = tree.join("usr/share/x");
    fs::create_dir_all(&full).unwrap();
    fs::set_permissions(&full, fs::Permissions::from_mode(0o1777)).unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&tree)],
        &["usr/share/x", "sticky"],
    );
}

#[test]
fn escaping_symlinks_are_refused() {
    for (target, reason) in [
        ("../../../etc/shadow", "climbs above the image root"),
        ("/etc/shadow", "outside usr/ and opt/"),
        ("../../etc/shadow", "outside usr/ and opt/"),
    ] {
        let dir = tempdir();
        let tree = tree_with(
            dir.path(),
            &[("usr/bin/link", Spec::Symlink(target.into()))],
        );
        assert_build_refused(
            &dir.path().join("out"),
            &["--tree", &tree],
            &["usr/bin/link", target, reason],
        );
    }
}

#[test]
fn bad_names_are_refused() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib")).unwrap();
    fs::write(
        tree.join("usr/lib").join(OsStr::from_bytes(b"bad\xffname")),
        "x",
    )
    .unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&tree)],
        &["usr/lib/bad", "not UTF-8"],
    );

    let src = dir.path().join("src");
    fs::write(&src, "x").unwrap();
    for (dest, reason) in [
        ("usr//bin/x", "empty path component"),
        ("usr/./bin/x", "\".\""),
        ("usr/../etc/x", "\"..\""),
        ("", "empty path"),
        ("usr/bin/", "empty path component"),
    ] {
        assert_build_refused(
            &dir.path().join("out"),
            &["--file", &format!("{dest}={}", src.display())],
            &[reason],
        );
    }
}

#[test]
fn bad_name_and_version_are_refused() {
    let dir = tempdir();
    let tree = tree_with(dir.path(), &[("usr/bin/x", file("x"))]);
    let out = dir.path().join("out");
    for (option, value) in [
        ("--name", "key alive"),
        ("--name", "a/b"),
        ("--version", "1/2"),
        ("--version", "1.0~rc1"),
        ("--name", ""),
    ] {
        let before = dir_listing(&out);
        let mut args = vec![
            "build",
            "--arch",
            "x86-64",
            "--out",
            path_str(&out),
            "--tree",
            &tree,
        ];
        if option == "--name" {
            args.extend(["--name", value, "--version", "1"]);
        } else {
            args.extend(["--name", "t", "--version", value]);
        }
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{option} {value:?} accepted");
        let message = stderr(&output);
        assert!(
            message.contains(&format!("{value:?}")) || value.is_empty(),
            "{message}"
        );
        assert!(message.contains("[A-Za-z0-9._+-]"), "{message}");
        assert_eq!(dir_listing(&out), before);
    }
}

#[test]
fn payload_with_its_own_extension_release_is_refused() {
    let dir = tempdir();
    let tree = tree_with(
        dir.path(),
        &[(
            "usr/lib/extension-release.d/extension-release.t",
            file("ID=_any\n"),
        )],
    );
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", &tree],
        &[
            "usr/lib/extension-release.d/extension-release.t",
            "already holds",
        ],
    );
}

#[test]
fn conflicting_sources_are_refused() {
    let dir = tempdir();
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    materialise(&one, &[("usr/bin/x".into(), file("one"))]);
    materialise(&two, &[("usr/bin/x".into(), file("two"))]);
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", path_str(&one), "--tree", path_str(&two)],
        &[
            "usr/bin/x",
            "two sources that differ",
            path_str(&one),
            path_str(&two),
        ],
    );
    // identical copies merge fine
    let three = dir.path().join("three");
    materialise(&three, &[("usr/bin/x".into(), file("one"))]);
    let output = build_t(
        &dir.path().join("ok"),
        &["--tree", path_str(&one), "--tree", path_str(&three)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn malformed_sha256sums_is_not_clobbered() {
    let dir = tempdir();
    let tree = tree_with(dir.path(), &[("usr/bin/x", file("x"))]);
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("SHA256SUMS"), "this is not a checksum line\n").unwrap();
    assert_build_refused(&out, &["--tree", &tree], &["SHA256SUMS", "line 1"]);
}

#[test]
fn bad_options_are_refused() {
    let dir = tempdir();
    let tree = tree_with(dir.path(), &[("usr/bin/x", file("x"))]);
    let out = dir.path().join("out");
    assert_build_refused(
        &out,
        &["--tree", &tree, "--update-url", "ftp://example.org/"],
        &["--update-url", "https://"],
    );
    assert_build_refused(
        &out,
        &["--tree", &tree, "--sysext-level", "1.0"],
        &["--sysext-level", "--os"],
    );
    assert_build_refused(
        &out,
        &["--tree", &tree, "--os", "Flatcar Linux"],
        &["--os", "os-release"],
    );
    assert_build_refused(
        &out,
        &["--tree", &tree, "--provenance", "novalue"],
        &["--provenance", "KEY=VALUE"],
    );
    assert_build_refused(
        &out,
        &[
            "--tree",
            &tree,
            "--provenance",
            "a=1",
            "--provenance",
            "a=2",
        ],
        &["\"a\"", "twice"],
    );
    assert_build_refused(&out, &["--file", "usr/bin/x"], &["DEST=SRC"]);
    assert_build_refused(&out, &[], &["no payload"]);
    assert_build_refused(
        &out,
        &["--tree", path_str(&dir.path().join("missing"))],
        &["missing", "cannot read"],
    );
    let before = snapshot(&out);
    let mut args: Vec<&str> = "build --name t --version 1 --arch s390x --tree"
        .split(' ')
        .collect();
    args.extend([tree.as_str(), "--out", path_str(&out)]);
    let output = run(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("s390x"), "{}", stderr(&output));
    assert!(snapshot(&out) == before, "the output directory changed");
}

#[test]
fn non_directories_at_host_directories_are_refused() {
    let dir = tempdir();
    let tree = tree_with(
        dir.path(),
        &[("usr/lib", Spec::Symlink("/opt/mylib".into()))],
    );
    assert_build_refused(
        &dir.path().join("out"),
        &["--tree", &tree],
        &["usr/lib", "hide the host's whole /usr/lib"],
    );
    let src = dir.path().join("src");
    fs::write(&src, "x").unwrap();
    assert_build_refused(
        &dir.path().join("out"),
        &["--file", &format!("usr/share={}", src.display())],
        &["usr/share", "hide the host's whole /usr/share"],
    );
}
