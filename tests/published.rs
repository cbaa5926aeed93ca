//! Published versions are immutable: a build that would put other bytes under a name the output
//! directory already publishes is refused and changes nothing; an identical rebuild succeeds and
//! changes nothing; `--replace-published` replaces on purpose.

mod common;

use std::fs;

use common::*;

/// Asserts that `build` is refused for putting other bytes under the published `name`: the
/// message names what is published (`published`), the build's own hash and what to do instead,
/// and the output directory is left as it was. Returns the hash the build gives.
fn refused_republication(build: &Build, name: &str, published: &str) -> String {
    let message = build.refused(&[
        &format!("refusing to publish different bytes as {name}: {published}"),
        "Nothing was written",
        "Build a new --version instead, or pass --replace-published",
    ]);
    message
        .split("this build gives sha256 ")
        .nth(1)
        .map(|rest| rest[..64].to_string())
        .expect("the new hash is named")
}

#[test]
fn an_identical_rebuild_changes_nothing() {
    let (tmp, built) = hello_feed();
    let before = snapshot(&built.dir);
    Build::hello(&tmp.path().join("payload"), &built.dir).run();
    assert_eq!(
        snapshot(&built.dir),
        before,
        "an identical rebuild touched DIR"
    );
}

#[test]
fn other_bytes_under_a_published_name_are_refused() {
    let (tmp, built) = hello_feed();
    let old_sha = sha256sum(&built.image);
    let changed = tmp.path().join("changed");
    write_payload(&changed, "a different hello");
    let rebuild = Build::hello(&changed, &built.dir);
    let new_sha = refused_republication(
        &rebuild,
        "hello-v1.0-x86-64.raw",
        &format!("{} has sha256 {old_sha}", built.image.display()),
    );
    assert_ne!(new_sha, old_sha);

    // On purpose: the image, manifest and SHA256SUMS line are replaced.
    rebuild.args(["--replace-published"]).run();
    assert_eq!(sha256sum(&built.image), new_sha);
    assert!(fs::read_to_string(&built.sums)
        .unwrap()
        .contains(&format!("{new_sha}  hello-v1.0-x86-64.raw")));
}

#[test]
fn a_sums_line_alone_publishes_the_name() {
    // The image was removed from DIR (or never uploaded there) but SHA256SUMS still offers it.
    let (tmp, built) = hello_feed();
    let old_sha = sha256sum(&built.image);
    fs::remove_file(&built.image).unwrap();
    let changed = tmp.path().join("changed");
    write_payload(&changed, "a different hello");
    refused_republication(
        &Build::hello(&changed, &built.dir),
        "hello-v1.0-x86-64.raw",
        &format!("SHA256SUMS lists it with sha256 {old_sha}"),
    );
}

#[test]
fn a_different_manifest_under_a_published_name_is_refused() {
    // Same image bytes, other provenance: the manifest of a published version is published too.
    let (tmp, built) = hello_feed();
    refused_republication(
        &Build::hello(&tmp.path().join("payload"), &built.dir)
            .args(["--provenance", "built-by=someone-else"]),
        "hello-v1.0-x86-64.manifest.json",
        &format!(
            "{} has sha256 {}",
            built.manifest.display(),
            sha256sum(&built.manifest)
        ),
    );
}
