//! DDIs (`build --format ddi`, `sign`, and `verify`/`inspect`/`diff` on them) against
//! independent readers: cryptsetup's veritysetup for the hash tree, util-linux's sfdisk for the
//! partition table, openssl for the signature. The kernel and systemd-sysext read them in the
//! VM test (tests/system/test_verity.py); systemd-dissect and systemd-repart there too.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn tool(name: &str) -> Command {
    require_tool(name);
    Command::new(name)
}

fn build_ddi(tmp: &Path) -> Built {
    let payload = tmp.join("payload");
    write_payload(&payload, "hello");
    // Incompressible data, so the file system spans a few hundred blocks and the tree has a
    // level below its root.
    fs::create_dir_all(payload.join("usr/lib/hello")).unwrap();
    fs::write(
        payload.join("usr/lib/hello/data"),
        Rng::new(7).bytes(1 << 20),
    )
    .unwrap();
    build(
        &payload,
        &tmp.join("out"),
        "1.0",
        &["--epoch", "1700000000", "--format", "ddi"],
    )
}

/// A self-signed certificate and its key, made with openssl as the docs tell release engineers.
fn make_key(dir: &Path, name: &str, algorithm: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let output = tool("openssl")
        .args(["req", "-x509", "-newkey"])
        .args(algorithm)
        .args(["-nodes", "-days", "3650", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl req: {}", stderr(&output));
    (key, cert)
}

fn rsa_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    make_key(dir, name, &["rsa:2048"])
}

fn sign(image: &Path, key: &Path, cert: &Path) -> std::process::Output {
    run(&[
        "sign".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--cert".as_ref(),
        cert.as_os_str(),
        image.as_os_str(),
    ])
}

/// A DDI of the hello payload signed with a fresh RSA key: (outputs, certificate).
fn signed_ddi(tmp: &Path) -> (Built, PathBuf) {
    let keys = tmp.join("keys");
    fs::create_dir(&keys).unwrap();
    let (key, cert) = rsa_key(&keys, "release");
    let built = build_ddi(tmp);
    expect_status(&sign(&built.image, &key, &cert), 0);
    (built, cert)
}

/// Every file of `dir` with its sha256, to show that a refused command changed nothing.
fn hashed_listing(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), sha256_file(&path))
        })
        .collect();
    files.sort();
    files
}

/// (name, start sector, sectors, type) of each partition, as sfdisk reads the table.
fn sfdisk_partitions(image: &Path) -> Vec<(String, u64, u64, String)> {
    let output = tool("sfdisk").arg("--json").arg(image).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let table: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

fn extract(image: &Path, start: u64, sectors: u64, dest: &Path) {
    let bytes = fs::read(image).unwrap();
    let (from, to) = ((start * 512) as usize, ((start + sectors) * 512) as usize);
    fs::write(dest, &bytes[from..to]).unwrap();
}

/// The root and root-verity partitions of `image` as files root.img and hash.img in `dir`.
fn extract_root_and_tree(
    image: &Path,
    parts: &[(String, u64, u64, String)],
    dir: &Path,
) -> (PathBuf, PathBuf) {
    let root = dir.join("root.img");
    let hash = dir.join("hash.img");
    extract(image, parts[0].1, parts[0].2, &root);
    extract(image, parts[1].1, parts[1].2, &hash);
    (root, hash)
}

/// `veritysetup verify ROOT HASH ROOT_HASH`, cryptsetup's own check of a data and hash device.
fn veritysetup_verify(root: &Path, hash: &Path, root_hash: &str) -> std::process::Output {
    tool("veritysetup")
        .arg("verify")
        .args([root, hash])
        .arg(root_hash)
        .output()
        .unwrap()
}

fn manifest_root_hash(manifest: &Path) -> String {
    let value: serde_json::Value = serde_json::from_slice(&fs::read(manifest).unwrap()).unwrap();
    value["ddi"]["root_hash"].as_str().unwrap().to_string()
}

#[test]
fn veritysetup_and_sfdisk_accept_the_ddi_and_veritysetup_catches_a_flipped_block() {
    let tmp = tempdir();
    let built = build_ddi(tmp.path());
    let parts = sfdisk_partitions(&built.image);
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["root-x86-64", "root-x86-64-verity"]);
    assert_eq!(parts[0].3, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    assert_eq!(parts[1].3, "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5");
    let verify = tool("sfdisk")
        .arg("--verify")
        .arg(&built.image)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));

    let (root, hash) = extract_root_and_tree(&built.image, &parts, tmp.path());
    let root_hash = manifest_root_hash(&built.manifest);
    let ok = veritysetup_verify(&root, &hash, &root_hash);
    assert!(ok.status.success(), "veritysetup: {}", stderr(&ok));
    // The root partition's UUID is the root hash's first half (systemd finds it that way).
    let uuids = tool("sfdisk")
        .arg("--json")
        .arg(&built.image)
        .output()
        .unwrap();
    let uuids = String::from_utf8(uuids.stdout).unwrap().to_lowercase();
    let first_half = &root_hash[..32];
    let as_uuid = format!(
        "{}-{}-{}-{}-{}",
        &first_half[..8],
        &first_half[8..12],
        &first_half[12..16],
        &first_half[16..20],
        &first_half[20..]
    );
    assert!(uuids.contains(&as_uuid), "{as_uuid} not in {uuids}");

    let mut damaged = fs::read(&root).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    fs::write(&root, damaged).unwrap();
    let bad = veritysetup_verify(&root, &hash, &root_hash);
    assert!(!bad.status.success(), "veritysetup accepted a flipped bit");
}

#[test]
fn signing_is_deterministic_and_verify_checks_the_signature_with_openssl() {
    let tmp = tempdir();
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (key, cert) = rsa_key(&keys, "release");
    let (other_key, other_cert) = rsa_key(&keys, "other");

    let a = build_ddi(&tmp.path().join("a"));
    let b = build_ddi(&tmp.path().join("b"));
    let unsigned = fs::read(&a.image).unwrap();
    expect_status(&sign(&a.image, &key, &cert), 0);
    expect_status(&sign(&b.image, &key, &cert), 0);
    assert!(fs::read(&a.image).unwrap() == fs::read(&b.image).unwrap());
    assert_ne!(fs::read(&a.image).unwrap(), unsigned);
    // Signing again with the same key changes nothing; another key is refused.
    let before = dir_listing(&a.dir);
    let again = sign(&a.image, &key, &cert);
    expect_status(&again, 0);
    assert_eq!(dir_listing(&a.dir), before);
    let other = sign(&a.image, &other_key, &other_cert);
    expect_error_naming(&other, "already signed");
    assert_eq!(dir_listing(&a.dir), before);

    // The partition holds systemd's JSON; the PKCS#7 inside verifies with openssl directly.
    let parts = sfdisk_partitions(&a.image);
    assert_eq!(parts[2].0, "root-x86-64-verity-sig");
    assert_eq!(parts[2].3, "41092b05-9fc8-4523-994f-2def0408b176");
    let sig_part = tmp.path().join("sig.json");
    extract(&a.image, parts[2].1, parts[2].2, &sig_part);
    let raw = fs::read(&sig_part).unwrap();
    let end = raw.iter().rposition(|&b| b != 0).unwrap() + 1;
    let json: serde_json::Value = serde_json::from_slice(&raw[..end]).unwrap();
    let root_hash = manifest_root_hash(&a.manifest);
    assert_eq!(json["rootHash"], root_hash.as_str());
    let der = tmp.path().join("sig.der");
    let decoded = tool("base64")
        .arg("-d")
        .stdin(
            fs::File::open(write_text(
                tmp.path(),
                "sig.b64",
                json["signature"].as_str().unwrap(),
            ))
            .unwrap(),
        )
        .output()
        .unwrap();
    fs::write(&der, decoded.stdout).unwrap();
    let content = write_text(tmp.path(), "roothash", &root_hash);
    let checked = tool("openssl")
        .args([
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-noverify",
            "-nointern",
        ])
        .arg("-in")
        .arg(&der)
        .arg("-content")
        .arg(&content)
        .arg("-certfile")
        .arg(&cert)
        .args(["-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(checked.status.success(), "openssl: {}", stderr(&checked));

    // SHA256SUMS and the manifest follow the signed bytes.
    let signed_sha = sha256_file(&a.image);
    assert!(fs::read_to_string(&a.sums).unwrap().contains(&signed_sha));
    let ok = run(&[
        "verify".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        a.image.as_os_str(),
    ]);
    expect_status(&ok, 0);
    let wrong = run(&[
        "verify".as_ref(),
        "--cert".as_ref(),
        other_cert.as_os_str(),
        a.image.as_os_str(),
    ]);
    expect_status(&wrong, 1);
    assert!(
        stdout(&wrong).contains("does not verify"),
        "{}",
        stdout(&wrong)
    );
}

fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn sign_refuses_keys_with_randomised_signatures_bare_squashfs_and_a_mismatched_key() {
    let tmp = tempdir();
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (ec_key, ec_cert) = make_key(&keys, "ec", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (_, rsa_cert) = rsa_key(&keys, "rsa");
    let built = build_ddi(tmp.path());
    let before = hashed_listing(&built.dir);

    let ec = sign(&built.image, &ec_key, &ec_cert);
    expect_error_naming(&ec, "use an RSA key");
    let mismatched = sign(&built.image, &ec_key, &rsa_cert);
    expect_error_naming(&mismatched, "is the key the certificate's?");
    let after = hashed_listing(&built.dir);
    assert_eq!(
        before, after,
        "a refused signing changed the output directory"
    );

    let squashfs = built_image(&tmp.path().join("plain"));
    let plain = sign(&squashfs.image, &ec_key, &ec_cert);
    expect_error_naming(&plain, "build it with --format ddi");
}

#[test]
fn verify_finds_a_flipped_data_block_and_a_rewritten_signature() {
    let tmp = tempdir();
    let (built, cert) = signed_ddi(tmp.path());
    let parts = sfdisk_partitions(&built.image);
    let pristine = fs::read(&built.image).unwrap();

    // One bit in the middle of the root partition, with a manifest rewritten for the changed
    // file (as an attacker would) so that only the hash tree can tell.
    let mut flipped = pristine.clone();
    let at = ((parts[0].1 + parts[0].2 / 2) * 512 + 17) as usize;
    flipped[at] ^= 0x40;
    let copy = tmp.path().join("flipped.raw");
    fs::write(&copy, &flipped).unwrap();
    let manifest = tmp.path().join("no-manifest.json");
    let text = fs::read_to_string(&built.manifest)
        .unwrap()
        .replace(&sha256_file(&built.image), &sha256_file(&copy));
    fs::write(&manifest, text).unwrap();
    let out = run(&[
        "verify".as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        copy.as_os_str(),
    ]);
    expect_status(&out, 1);
    assert!(
        stdout(&out).contains("MISMATCH  dm-verity") && stdout(&out).contains("hash tree differs"),
        "{}",
        stdout(&out)
    );

    // A signature partition whose rootHash names another image.
    let mut rewritten = pristine;
    let sig_at = (parts[2].1 * 512) as usize;
    let needle = b"\"rootHash\":\"";
    let pos = sig_at
        + rewritten[sig_at..]
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
    let digit = pos + needle.len();
    rewritten[digit] = if rewritten[digit] == b'0' { b'1' } else { b'0' };
    let gpt_fixed = tmp.path().join("rewritten.raw");
    fs::write(&gpt_fixed, &rewritten).unwrap();
    let out = run(&[
        "verify".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        gpt_fixed.as_os_str(),
    ]);
    // The signature partition is not covered by a GPT checksum: the file's own sha256 differs
    // from the manifest, and the signature check names the wrong root hash.
    expect_status(&out, 1);
    assert!(
        stdout(&out).contains("the signature is for root hash"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inspect_and_diff_show_the_disk_image() {
    let tmp = tempdir();
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (key, cert) = rsa_key(&keys, "release");
    let built = build_ddi(tmp.path());
    let unsigned = tmp.path().join("unsigned.raw");
    fs::copy(&built.image, &unsigned).unwrap();
    expect_status(&sign(&built.image, &key, &cert), 0);

    let out = run(&[
        "inspect".as_ref(),
        "--json".as_ref(),
        built.image.as_os_str(),
    ]);
    expect_status(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["image"]["format"], "ddi");
    assert_eq!(
        json["ddi"]["root_hash"],
        manifest_root_hash(&built.manifest).as_str()
    );
    assert_eq!(json["ddi"]["partitions"].as_array().unwrap().len(), 3);
    assert!(json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "usr/bin/hello"));

    let diff = run(&[
        "diff".as_ref(),
        unsigned.as_os_str(),
        built.image.as_os_str(),
    ]);
    expect_status(&diff, 1);
    let text = stdout(&diff);
    assert!(text.contains("signed by: (unsigned) -> "), "{text}");
    assert!(
        text.contains("partition root-x86-64-verity-sig: only in b"),
        "{text}"
    );
    assert!(!text.contains("entries:"), "{text}");
}

/// Damaged DDIs end in a message naming the problem and exit status 2 (inspect) or 1 (verify),
/// never a panic or a listing of the wrong bytes.
#[test]
fn damaged_tables_and_signature_partitions_are_named() {
    let tmp = tempdir();
    let (built, _) = signed_ddi(tmp.path());
    let pristine = fs::read(&built.image).unwrap();
    let parts = sfdisk_partitions(&built.image);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "cut short",
            pristine[..pristine.len() - 8192].to_vec(),
            "the file may be cut short",
        ),
        (
            "header checksum",
            {
                let mut b = pristine.clone();
                b[512 + 40] ^= 1;
                b
            },
            "GPT header checksum mismatch",
        ),
        (
            "signature garbage",
            {
                let mut b = pristine.clone();
                let at = (parts[2].1 * 512) as usize;
                b[at] = b'#';
                b
            },
            "does not hold systemd's signature JSON",
        ),
        (
            "verity superblock",
            {
                let mut b = pristine.clone();
                let at = (parts[1].1 * 512) as usize;
                b[at] = b'X';
                b
            },
            "no verity superblock",
        ),
    ];
    for (what, bytes, needle) in cases {
        let path = tmp.path().join("damaged.raw");
        fs::write(&path, &bytes).unwrap();
        let inspect = run(&["inspect".as_ref(), path.as_os_str()]);
        expect_status(&inspect, 2);
        assert!(
            stderr(&inspect).contains(needle),
            "{what}: {}",
            stderr(&inspect)
        );
        let verify = run(&[
            "verify".as_ref(),
            "--manifest".as_ref(),
            built.manifest.as_os_str(),
            path.as_os_str(),
        ]);
        expect_status(&verify, 1);
        assert!(
            stdout(&verify).contains(needle),
            "{what}: {}",
            stdout(&verify)
        );
    }
}

/// An arm64 DDI carries the arm64 partition types and names, and its tree verifies like the
/// x86-64 one (no kernel here runs arm64 DDIs: this is what can be checked without one).
#[test]
fn arm64_ddis_use_the_arm64_partition_types() {
    let tmp = tempdir();
    let payload = tmp.path().join("payload");
    write_payload(&payload, "hello");
    let out = tmp.path().join("out");
    let output = run(&[
        "build".as_ref(),
        "--name".as_ref(),
        "hello".as_ref(),
        "--version".as_ref(),
        "1.0".as_ref(),
        "--arch".as_ref(),
        "arm64".as_ref(),
        "--os".as_ref(),
        "flatcar".as_ref(),
        "--format".as_ref(),
        "ddi".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tree".as_ref(),
        payload.as_os_str(),
    ]);
    expect_status(&output, 0);
    let image = out.join("hello-v1.0-arm64.raw");
    let parts = sfdisk_partitions(&image);
    let named: Vec<(&str, &str)> = parts.iter().map(|p| (p.0.as_str(), p.3.as_str())).collect();
    assert_eq!(
        named,
        [
            ("root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
            ("root-arm64-verity", "df3300ce-d69f-4c92-978c-9bfb0f38d820"),
        ]
    );
    let (root, hash) = extract_root_and_tree(&image, &parts, tmp.path());
    let root_hash = manifest_root_hash(&out.join("hello-v1.0-arm64.manifest.json"));
    let ok = veritysetup_verify(&root, &hash, &root_hash);
    assert!(ok.status.success(), "veritysetup: {}", stderr(&ok));
}
