//! `sysext-assembler verify` on real images written by `build` (and by mksquashfs for what
//! `build` refuses to write): what passes, and that every kind of mismatch is caught, named and
//! exits 1, while usage and I/O problems exit 2.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

#[test]
fn verifies_with_files_found_next_to_the_image() {
    let (_tmp, built) = hello_feed();
    let output = cli(&[&"verify", &built.image]);
    expect_status(&output, 0);
    let text = stdout(&output);
    for check in [
        "sha256sums",
        "manifest-hash",
        "layout",
        "entries",
        "extension-release",
    ] {
        assert!(
            text.contains(&format!("ok        {check}:")),
            "{check} not reported ok:\n{text}"
        );
    }
    assert!(text.contains(&sha256sum(&built.image)), "{text}");
    assert_contains(&text, &["verified:"]);
}

#[test]
fn verifies_a_renamed_copy_with_explicit_files() {
    let (tmp, built) = hello_feed();
    let deployed = tmp.path().join("hello.raw");
    fs::copy(&built.image, &deployed).unwrap();
    let output = cli(&[
        &"verify",
        &"--sums",
        &built.sums,
        &"--manifest",
        &built.manifest,
        &deployed,
    ]);
    expect_status(&output, 0);
}

#[test]
fn refuses_to_verify_against_nothing() {
    let (tmp, built) = hello_feed();
    let lone = tmp.path().join("lone.raw");
    fs::copy(&built.image, &lone).unwrap();
    let output = cli(&[&"verify", &lone]);
    expect_error_naming(
        &output,
        &[
            &format!("nothing to verify {} against", lone.display()),
            "give --sums SHA256SUMS and/or --manifest FILE",
            "or put SHA256SUMS or lone.manifest.json next to the image",
        ],
    );
}

#[test]
fn missing_files_are_errors_not_mismatches() {
    let (tmp, built) = hello_feed();
    let missing = tmp.path().join("nope.raw");
    let manifest = tmp.path().join("no.manifest.json");
    for (output, what) in [
        (
            cli(&[&"verify", &missing]),
            format!("cannot open {}", missing.display()),
        ),
        (
            cli(&[&"verify", &"--manifest", &manifest, &built.image]),
            format!("cannot read the manifest {}", manifest.display()),
        ),
    ] {
        expect_error_naming(&output, &[&what, "No such file or directory"]);
    }
}

#[test]
fn a_changed_file_is_named() {
    let (tmp, built) = hello_feed();
    // Same name and version, different content: the old manifest and sums must reject it.
    let payload = tmp.path().join("payload2");
    write_payload(&payload, "tampered");
    let other = Build::hello(&payload, &tmp.path().join("other")).run();
    let text = expect_stdout(
        &cli(&[
            &"verify",
            &"--sums",
            &built.sums,
            &"--manifest",
            &built.manifest,
            &other.image,
        ]),
        1,
        &[
            "MISMATCH  sha256sums",
            "MISMATCH  manifest-hash",
            "/usr/bin/hello: size",
            "/usr/bin/hello: content sha256",
        ],
    );
    assert!(
        !text.contains("/usr/bin/data:"),
        "unchanged file reported:\n{text}"
    );
    assert_contains(&text, &["NOT VERIFIED"]);
}

#[test]
fn a_wrong_sums_line_is_named() {
    let (_tmp, built) = hello_feed();
    let file = built
        .image
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    fs::write(&built.sums, format!("{}  {file}\n", "0".repeat(64))).unwrap();
    let output = cli(&[&"verify", &"--json", &built.image]);
    expect_status(&output, 1);
    let json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["verified"], false);
    let sums = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sha256sums")
        .unwrap();
    assert_eq!(sums["ok"], false);
    assert!(sums["problems"][0]
        .as_str()
        .unwrap()
        .contains(&"0".repeat(64)));
    // Everything read from the image itself still holds.
    for name in ["manifest-hash", "layout", "entries", "extension-release"] {
        let check = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        assert_eq!(check["ok"], true, "{name}: {check}");
    }

    fs::write(&built.sums, format!("{}  other.raw\n", "0".repeat(64))).unwrap();
    let output = cli(&[&"verify", &built.image]);
    expect_stdout(&output, 1, &["has no line for"]);
}

/// Edits the manifest next to the image; its hash still matches the image, so only the deep
/// entry comparison can catch the difference.
fn verify_with_edited_manifest(edit: impl FnOnce(&mut Value)) -> String {
    let (_tmp, built) = hello_feed();
    let mut manifest: Value =
        serde_json::from_str(&fs::read_to_string(&built.manifest).unwrap()).unwrap();
    edit(&mut manifest);
    fs::write(
        &built.manifest,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let text = expect_stdout(
        &cli(&[&"verify", &built.image]),
        1,
        &["ok        manifest-hash"],
    );
    assert!(
        text.contains("MISMATCH  entries") || text.contains("MISMATCH  extension-release"),
        "{text}"
    );
    text
}

fn entry_mut<'a>(manifest: &'a mut Value, path: &str) -> &'a mut Value {
    manifest["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["path"] == path)
        .unwrap()
}

/// Verifies the test image against its manifest changed by `edit`; the report must name every
/// one of `wanted`.
fn verify_names(edit: impl FnOnce(&mut Value), wanted: &[&str]) {
    let text = verify_with_edited_manifest(edit);
    for w in wanted {
        assert!(text.contains(w), "{w:?} not in:\n{text}");
    }
}

#[test]
fn entry_differences_are_named() {
    verify_names(
        |m| entry_mut(m, "usr/bin/hello")["mode"] = "0644".into(),
        &["/usr/bin/hello: mode 0755 differs from the manifest's 0644"],
    );
    verify_names(
        |m| entry_mut(m, "usr/bin/hi")["target"] = "data".into(),
        &["/usr/bin/hi: symlink target \"hello\" differs"],
    );
    verify_names(
        |m| {
            let mut extra = entry_mut(m, "usr/bin/hello").clone();
            extra["path"] = "usr/bin/zz-extra".into();
            m["entries"].as_array_mut().unwrap().push(extra);
        },
        &["/usr/bin/zz-extra: in the manifest but not in the image"],
    );
    verify_names(
        |m| {
            m["entries"]
                .as_array_mut()
                .unwrap()
                .retain(|e| e["path"] != "usr/bin/data");
        },
        &["/usr/bin/data: in the image but not in the manifest"],
    );
    verify_names(
        |m| entry_mut(m, "usr/bin/data")["type"] = "symlink".into(),
        &["/usr/bin/data: is a file, the manifest says Symlink"],
    );
}

#[test]
fn mtimes_are_checked_against_the_epoch_including_the_root() {
    verify_names(
        |m| m["epoch"] = 5.into(),
        &[
            "superblock time 1700000000 differs from the manifest's epoch 5",
            "/: mtime 1700000000 differs",
            "/usr/bin/hello: mtime 1700000000 differs",
        ],
    );
}

#[test]
fn extension_release_must_match_the_manifest() {
    verify_names(
        |m| m["arch"] = "arm64".into(),
        &["ARCHITECTURE=x86-64 but the manifest says arm64"],
    );
    verify_names(
        |m| m["name"] = "other".into(),
        &[
            "extension-release.other",
            "other extension-release files present",
        ],
    );
}

#[test]
fn layout_rules_hold_without_a_manifest() {
    // mksquashfs writes what build refuses: usr/sbin, a non-root owner, a setuid file, and a
    // top-level etc/. SHA256SUMS vouches for the bytes; verify must still reject the layout.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("usr/sbin")).unwrap();
    fs::create_dir_all(tree.join("usr/lib/extension-release.d")).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("usr/sbin/keepalived"), "x").unwrap();
    fs::write(
        tree.join("usr/lib/extension-release.d/extension-release.bad"),
        "ID=_any\nARCHITECTURE=x86-64\n",
    )
    .unwrap();
    fs::write(tree.join("etc/passwd"), "root").unwrap();
    // The setuid bit comes from a mksquashfs pseudo-definition ("m": modify an existing file's
    // mode): Nix's build sandbox, where this test also runs, forbids chmod with setuid.
    fs::write(tree.join("usr/suid"), "x").unwrap();
    let image = tmp.path().join("bad-v1-x86-64.raw");
    mksquashfs(
        &tree,
        &image,
        &[
            "-force-uid",
            "1000",
            "-force-gid",
            "1000",
            "-all-time",
            "7",
            "-mkfs-time",
            "7",
            "-p",
            "usr/suid m 4755 1000 1000",
        ],
    );
    fs::write(
        tmp.path().join("SHA256SUMS"),
        format!("{}  bad-v1-x86-64.raw\n", sha256sum(&image)),
    )
    .unwrap();

    expect_stdout(
        &cli(&[&"verify", &image]),
        1,
        &[
            "ok        sha256sums",
            "MISMATCH  layout",
            "usr/sbin",
            "owner 1000:1000, expected 0:0",
            "setuid",
            "\"etc\"",
            "ok        extension-release",
            "no manifest given",
        ],
    );
}

#[test]
fn a_corrupted_image_is_a_mismatch_with_a_clear_message() {
    let (_tmp, built) = hello_feed();
    let mut bytes = fs::read(&built.image).unwrap();
    let len = bytes.len();
    bytes.truncate(len / 2);
    fs::write(&built.image, &bytes).unwrap();
    expect_stdout(
        &cli(&[&"verify", &built.image]),
        1,
        &[
            "MISMATCH  readable",
            "the image cannot be read",
            "is not a readable SquashFS image",
        ],
    );
}

/// The image is opened once: every check reads the same open file, so a file put in its place
/// during the run cannot pass some checks with other bytes (it used to be opened three times).
#[test]
fn the_image_is_opened_once() {
    require_tool("strace");
    let (tmp, built) = hello_feed();
    let log = tmp.path().join("strace.log");
    let output = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(BIN)
        .arg("verify")
        .arg(&built.image)
        .output()
        .unwrap();
    expect_status(&output, 0);
    let name = built.image.display().to_string();
    let opens: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|line| line.contains(&format!("\"{name}\"")))
        .map(str::to_string)
        .collect();
    assert_eq!(opens.len(), 1, "{opens:#?}");
}

/// A feed as a node sees it: SHA256SUMS signed by the feed's key. (keyring, gnupg home)
fn signed_feed(tmp: &std::path::Path, built: &Built) -> std::path::PathBuf {
    let home = throwaway_key(tmp);
    let keyring = tmp.join("feed.gpg");
    fs::write(&keyring, gpg(&home, &["--export"])).unwrap();
    gpg(
        &home,
        &[
            "--yes",
            "--detach-sign",
            "--output",
            &format!("{}.gpg", built.sums.display()),
            &built.sums.display().to_string(),
        ],
    );
    keyring
}

/// `verify --keyring` checks SHA256SUMS.gpg over SHA256SUMS first, with gpgv, and names that
/// layer when it fails: a list changed after signing, a signature by another key, no signature.
#[test]
fn the_keyring_checks_the_signature_of_the_list_first() {
    require_tool("gpgv");
    let (tmp, built) = hello_feed();
    let keyring = signed_feed(tmp.path(), &built);
    let verify =
        |keyring: &std::path::Path| cli(&[&"verify", &"--keyring", &keyring, &built.image]);
    let good = verify(&keyring);
    expect_status(&good, 0);
    let text = stdout(&good);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("ok        sha256sums-signature:"),
        "{text}"
    );

    // Another key's keyring: the signature is not by a trusted key.
    let other_dir = tmp.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let other_home = throwaway_key(&other_dir);
    let other = tmp.path().join("other.gpg");
    fs::write(&other, gpg(&other_home, &["--export"])).unwrap();
    let out = verify(&other);
    expect_status(&out, 1);
    assert!(
        stdout(&out).starts_with("MISMATCH  sha256sums-signature:"),
        "{}",
        stdout(&out)
    );

    // The list changed after it was signed (a line added): BAD signature.
    let original = fs::read(&built.sums).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(format!("{}  extra.raw\n", "0".repeat(64)).as_bytes());
    fs::write(&built.sums, &changed).unwrap();
    let out = verify(&keyring);
    expect_status(&out, 1);
    assert!(stdout(&out).contains("BAD signature"), "{}", stdout(&out));
    fs::write(&built.sums, &original).unwrap();

    // An armored keyring is a usage error saying what to give.
    let armored = tmp.path().join("armored.asc");
    fs::write(
        &armored,
        gpg(&tmp.path().join("gnupg"), &["--export", "--armor"]),
    )
    .unwrap();
    expect_error_naming(
        &verify(&armored),
        &[
            &format!("the keyring {} is ASCII-armored", armored.display()),
            "give a binary keyring",
        ],
    );

    // No signature at all.
    let sig = format!("{}.gpg", built.sums.display());
    fs::rename(&sig, tmp.path().join("kept.gpg")).unwrap();
    let out = verify(&keyring);
    expect_stdout(&out, 1, &["the list is not signed"]);
}
