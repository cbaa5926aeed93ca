//! Every refusal of `build`: exit status 2, a message naming the path, what is wrong with it
//! and what to do, and nothing written: the output directory (seeded with a published feed)
//! holds exactly what it held before, without a temporary file.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A payload tree at `root` holding `entries`.
fn tree_with(root: &Path, entries: &[(&str, Spec)]) -> PathBuf {
    let entries: Vec<(String, Spec)> = entries
        .iter()
        .map(|(p, s)| (p.to_string(), s.clone()))
        .collect();
    materialise(root, &entries);
    root.to_path_buf()
}

/// A one-line source file for `--file`, at DIR/src.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::write(&src, "x").unwrap();
    src
}

/// What systemd-sysext cannot merge: the refusal names the entry and says to remove it.
const SPECIAL: &str = "a system extension may hold only directories, regular files and symlinks";
/// What the refusal of a setuid, setgid or sticky bit says to do.
const CLEAR_BITS: &str = "Clear it with chmod ug-s,o-t";

#[test]
fn top_level_outside_usr_and_opt() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let tree = tree_with(
        &dir.path().join("tree"),
        &[
            ("usr/bin/x", Spec::file("x")),
            ("etc/keepalived/keepalived.conf", Spec::file("c")),
        ],
    );
    let move_it = "move it below usr/ or opt/";
    Build::new(&out).tree(&tree).refused(&[
        "etc: top-level entry \"etc\" is outside usr/ and opt/",
        move_it,
    ]);
    Build::new(&out)
        .file("var/lib/x", &source(dir.path()))
        .refused(&[
            "var/lib/x: top-level entry \"var\" is outside usr/ and opt/",
            move_it,
        ]);
    // usr itself must be a directory
    let not_a_dir = tree_with(&dir.path().join("tree2"), &[("usr", Spec::file("x"))]);
    Build::new(&out)
        .tree(&not_a_dir)
        .refused(&["usr: must be a directory, not a regular file"]);
}

#[test]
fn usr_sbin_is_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let why = "/usr/sbin is a symlink to bin on the target system";
    let what_to_do = "Install to usr/bin/ instead";
    let tree = tree_with(
        &dir.path().join("tree"),
        &[("usr/sbin/keepalived", Spec::executable("elf"))],
    );
    Build::new(&out)
        .tree(&tree)
        .refused(&[&format!("usr/sbin: {why}"), what_to_do]);
    Build::new(&out)
        .file("usr/sbin/keepalived", &source(dir.path()))
        .refused(&[&format!("usr/sbin/keepalived: {why}"), what_to_do]);
    // an empty usr/sbin directory hides the host's /usr/sbin just as well
    let empty = tree_with(&dir.path().join("empty"), &[("usr/sbin", Spec::Dir)]);
    Build::new(&out).tree(&empty).refused(&[
        &format!("usr/sbin: {why}"),
        "hides the host's whole /usr/sbin",
        what_to_do,
    ]);
}

#[test]
fn fifos_and_sockets_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib")).unwrap();
    require_tool("mkfifo");
    let status = std::process::Command::new("mkfifo")
        .arg(tree.join("usr/lib/fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    Build::new(&out).tree(&tree).refused(&[
        "usr/lib/fifo: is a fifo",
        SPECIAL,
        "Remove it from the payload",
    ]);
    fs::remove_file(tree.join("usr/lib/fifo")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(tree.join("usr/lib/sock")).unwrap();
    Build::new(&out).tree(&tree).refused(&[
        "usr/lib/sock: is a socket",
        SPECIAL,
        "Remove it from the payload",
    ]);
}

/// Named chmod_setuid_*: Nix's build sandbox forbids setting setuid and setgid bits, so the Nix
/// check phase skips this test by its exact name (nix/sysext-assembler.nix); tests/run runs it.
#[test]
fn chmod_setuid_setuid_and_setgid_are_refused() {
    for (mode, bit) in [(0o4755, "setuid"), (0o2755, "setgid")] {
        let dir = tempdir();
        let out = dir.path().join("out");
        let tree = dir.path().join("tree");
        let full = tree.join("usr/bin/x");
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, "x").unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
        let what = format!("has the {bit} bit (mode {mode:o})");
        Build::new(&out)
            .tree(&tree)
            .refused(&[&format!("usr/bin/x: {what}"), CLEAR_BITS]);
        Build::new(&out)
            .file("usr/bin/y", &full)
            .refused(&[&format!("usr/bin/y: {what}"), CLEAR_BITS]);
    }
}

#[test]
fn sticky_directories_are_refused() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    let full = tree.join("usr/share/x");
    fs::create_dir_all(&full).unwrap();
    fs::set_permissions(&full, fs::Permissions::from_mode(0o1777)).unwrap();
    Build::new(&dir.path().join("out"))
        .tree(&tree)
        .refused(&["usr/share/x: has the sticky bit (mode 1777)", CLEAR_BITS]);
}

#[test]
fn escaping_symlinks_are_refused() {
    for (target, reason) in [
        ("../../../etc/shadow", "climbs above the image root"),
        (
            "/etc/shadow",
            "resolves to /etc/shadow outside usr/ and opt/",
        ),
        (
            "../../etc/shadow",
            "resolves to /etc/shadow outside usr/ and opt/",
        ),
    ] {
        let dir = tempdir();
        let tree = tree_with(
            &dir.path().join("tree"),
            &[("usr/bin/link", Spec::Symlink(target.into()))],
        );
        Build::new(&dir.path().join("out")).tree(&tree).refused(&[
            &format!("usr/bin/link: symlink target {target:?} {reason}"),
            "point it at a path inside usr/ or opt/",
        ]);
    }
}

#[test]
fn bad_names_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib")).unwrap();
    fs::write(
        tree.join("usr/lib").join(OsStr::from_bytes(b"bad\xffname")),
        "x",
    )
    .unwrap();
    Build::new(&out)
        .tree(&tree)
        .refused(&["the name \"bad\\xFFname\" is not UTF-8; rename it"]);

    let src = source(dir.path());
    let relative = "relative to the image root";
    for (dest, needles) in [
        (
            "usr//bin/x",
            ["\"usr//bin/x\": empty path component", relative],
        ),
        (
            "usr/./bin/x",
            [
                "\"usr/./bin/x\": the component \".\" is not allowed",
                relative,
            ],
        ),
        (
            "usr/../etc/x",
            [
                "\"usr/../etc/x\": the component \"..\" is not allowed",
                relative,
            ],
        ),
        ("", ["empty path", "name a path inside the image"]),
        ("usr/bin/", ["\"usr/bin/\": empty path component", relative]),
    ] {
        Build::new(&out).file(dest, &src).refused(&needles);
    }
}

#[test]
fn bad_name_and_version_are_refused() {
    let dir = tempdir();
    let tree = tree_with(&dir.path().join("tree"), &[("usr/bin/x", Spec::file("x"))]);
    let out = dir.path().join("out");
    for (name, version, what) in [
        ("key alive", "1", "the name \"key alive\" contains ' '"),
        ("a/b", "1", "the name \"a/b\" contains '/'"),
        ("t", "1/2", "the version \"1/2\" contains '/'"),
        ("t", "1.0~rc1", "the version \"1.0~rc1\" contains '~'"),
        ("", "1", "the name is empty"),
    ] {
        Build::new(&out)
            .name(name)
            .version(version)
            .tree(&tree)
            .refused(&[what, "[A-Za-z0-9._+-]"]);
    }
}

#[test]
fn payload_with_its_own_extension_release_is_refused() {
    let dir = tempdir();
    let tree = tree_with(
        &dir.path().join("tree"),
        &[(
            "usr/lib/extension-release.d/extension-release.t",
            Spec::file("ID=_any\n"),
        )],
    );
    Build::new(&dir.path().join("out")).tree(&tree).refused(&[
        "usr/lib/extension-release.d/extension-release.t: the payload already holds this file",
        "remove it from the payload",
    ]);
}

#[test]
fn conflicting_sources_are_refused() {
    let dir = tempdir();
    let one = tree_with(&dir.path().join("one"), &[("usr/bin/x", Spec::file("one"))]);
    let two = tree_with(&dir.path().join("two"), &[("usr/bin/x", Spec::file("two"))]);
    Build::new(&dir.path().join("out"))
        .tree(&one)
        .tree(&two)
        .refused(&[
            "usr/bin/x comes from two sources that differ",
            &format!("--tree {}", one.display()),
            &format!("--tree {}", two.display()),
            "Remove one of them",
        ]);
    // identical copies merge fine
    let three = tree_with(
        &dir.path().join("three"),
        &[("usr/bin/x", Spec::file("one"))],
    );
    Build::new(&dir.path().join("ok"))
        .tree(&one)
        .tree(&three)
        .run();
}

#[test]
fn malformed_sha256sums_is_not_clobbered() {
    let dir = tempdir();
    let tree = tree_with(&dir.path().join("tree"), &[("usr/bin/x", Spec::file("x"))]);
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("SHA256SUMS"), "this is not a checksum line\n").unwrap();
    Build::new(&out).tree(&tree).refused(&[
        &format!("cannot merge into {}", out.join("SHA256SUMS").display()),
        "SHA256SUMS line 1: \"this is not a checksum line\" is not `<64 hex digits>  <file name>`",
        "fix or remove the line",
    ]);
}

#[test]
fn bad_options_are_refused() {
    let dir = tempdir();
    let tree = tree_with(&dir.path().join("tree"), &[("usr/bin/x", Spec::file("x"))]);
    let out = dir.path().join("out");
    let missing = dir.path().join("missing");
    let missing_tree = format!("--tree {}: cannot read it", missing.display());
    let cases: [(Build, &[&str]); 9] = [
        (
            Build::new(&out)
                .tree(&tree)
                .args(["--update-url", "ftp://example.org/"]),
            &[
                "--update-url \"ftp://example.org/\": must start with https://",
                "give the feed's https:// URL",
            ],
        ),
        (
            Build::new(&out).tree(&tree).args(["--sysext-level", "1.0"]),
            &["--sysext-level 1.0 needs --os", "for example --os flatcar"],
        ),
        (
            Build::new(&out).tree(&tree).args(["--os", "Flatcar Linux"]),
            &[
                "--os \"Flatcar Linux\" is not valid",
                "only lower-case letters, digits",
            ],
        ),
        (
            Build::new(&out)
                .tree(&tree)
                .args(["--provenance", "novalue"]),
            &["--provenance \"novalue\": expected KEY=VALUE"],
        ),
        (
            Build::new(&out)
                .tree(&tree)
                .args(["--provenance", "a=1", "--provenance", "a=2"]),
            &["--provenance: the key \"a\" is given twice"],
        ),
        (
            Build::new(&out).args(["--file", "usr/bin/x"]),
            &["--file \"usr/bin/x\": expected DEST=SRC"],
        ),
        (
            Build::new(&out),
            &["no payload: give at least one --tree DIR or --file DEST=SRC"],
        ),
        (Build::new(&out).tree(&missing), &[&missing_tree]),
        // The valid names, however the list is printed.
        (
            Build::new(&out).arch("s390x").tree(&tree),
            &["--arch", "s390x", "x86-64", "arm64"],
        ),
    ];
    for (build, needles) in cases {
        build.refused(needles);
    }
}

#[test]
fn non_directories_at_host_directories_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let tree = tree_with(
        &dir.path().join("tree"),
        &[("usr/lib", Spec::Symlink("/opt/mylib".into()))],
    );
    Build::new(&out).tree(&tree).refused(&[
        "usr/lib: is a symlink in the image but a directory on every host",
        "hide the host's whole /usr/lib",
        "Ship a directory there",
    ]);
    Build::new(&out)
        .file("usr/share", &source(dir.path()))
        .refused(&[
            "usr/share: is a regular file in the image but a directory on every host",
            "hide the host's whole /usr/share",
            "Ship a directory there",
        ]);
}
