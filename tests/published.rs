//! Published versions are immutable: a build that would put other bytes under a name the output
//! directory already publishes is refused and changes nothing; an identical rebuild succeeds and
//! changes nothing; `--replace-published` replaces on purpose.

mod common;

use std::fs;
use std::path::Path;

use common::*;

#[test]
fn an_identical_rebuild_changes_nothing() {
    let tmp = tempdir();
    let built = built_image(tmp.path());
    let before = snapshot(&built.dir);
    let output = build(
        &tmp.path().join("payload"),
        &built.dir,
        "1.0",
        &["--epoch", "1700000000"],
    );
    assert_eq!(
        snapshot(&output.dir),
        before,
        "an identical rebuild touched DIR"
    );
}

#[test]
fn other_bytes_under_a_published_name_are_refused() {
    let tmp = tempdir();
    let built = built_image(tmp.path());
    let old_sha = sha256sum(&built.image);
    let before = snapshot(&built.dir);
    let changed = tmp.path().join("changed");
    write_payload(&changed, "a different hello");

    let output = build_other(&changed, &built.dir, &[]);
    expect_error_naming(&output, "hello-v1.0-x86-64.raw");
    let message = stderr(&output);
    assert!(message.contains(&old_sha), "old hash missing: {message}");
    assert!(message.contains("--replace-published"), "{message}");
    let new_sha = message
        .split("this build gives sha256 ")
        .nth(1)
        .map(|rest| &rest[..64])
        .expect("the new hash is named");
    assert_ne!(new_sha, old_sha);
    assert_eq!(snapshot(&built.dir), before, "a refused build changed DIR");

    // On purpose: the image, manifest and SHA256SUMS line are replaced.
    let output = build_other(&changed, &built.dir, &["--replace-published"]);
    expect_status(&output, 0);
    assert_eq!(sha256sum(&built.image), new_sha);
    assert!(fs::read_to_string(&built.sums)
        .unwrap()
        .contains(&format!("{new_sha}  hello-v1.0-x86-64.raw")));
}

/// The same build as [`built_image`] (hello 1.0, same epoch and options) from another payload.
fn build_other(payload: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--epoch", "1700000000"];
    args.extend_from_slice(extra);
    run_hello_build(payload, out, "1.0", &args)
}

#[test]
fn a_sums_line_alone_publishes_the_name() {
    // The image was removed from DIR (or never uploaded there) but SHA256SUMS still offers it.
    let tmp = tempdir();
    let built = built_image(tmp.path());
    fs::remove_file(&built.image).unwrap();
    let before = snapshot(&built.dir);
    let changed = tmp.path().join("changed");
    write_payload(&changed, "a different hello");
    let output = build_other(&changed, &built.dir, &[]);
    expect_error_naming(&output, "SHA256SUMS lists it with sha256");
    assert_eq!(snapshot(&built.dir), before);
}

#[test]
fn a_different_manifest_under_a_published_name_is_refused() {
    // Same image bytes, other provenance: the manifest of a published version is published too.
    let tmp = tempdir();
    let built = built_image(tmp.path());
    let before = snapshot(&built.dir);
    let output = build_other(
        &tmp.path().join("payload"),
        &built.dir,
        &["--provenance", "built-by=someone-else"],
    );
    expect_error_naming(&output, "hello-v1.0-x86-64.manifest.json");
    assert_eq!(snapshot(&built.dir), before);
}
