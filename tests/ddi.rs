//! DDIs (`build --format ddi`, `sign`, and `verify`/`inspect`/`diff` on them) against
//! independent readers: cryptsetup's veritysetup for the hash tree, util-linux's sfdisk for the
//! partition table, openssl for the signature. The kernel and systemd-sysext read them in the
//! VM test (tests/system/test_verity.py); systemd-dissect and systemd-repart there too.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sysext_assembler::disk::gpt::crc32;

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
    Build::hello(&payload, &tmp.join("out")).ddi().run()
}

/// TMP/keys, created empty, for the keys and certificates of a test.
fn key_dir(tmp: &Path) -> PathBuf {
    let keys = tmp.join("keys");
    fs::create_dir(&keys).unwrap();
    keys
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
    cli(&[&"sign", &"--key", &key, &"--cert", &cert, &image])
}

/// A DDI of the hello payload signed with a fresh RSA key: (outputs, certificate).
fn signed_ddi(tmp: &Path) -> (Built, PathBuf) {
    let keys = key_dir(tmp);
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
    let keys = key_dir(tmp.path());
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
    expect_already_signed(&other, &a.image);
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
    let ok = cli(&[&"verify", &"--cert", &cert, &a.image]);
    expect_status(&ok, 0);
    let wrong = cli(&[&"verify", &"--cert", &other_cert, &a.image]);
    expect_stdout(&wrong, 1, &["does not verify"]);
}

/// Asserts the refusal to sign `image`, signed already by another key: what is wrong and what to do.
fn expect_already_signed(output: &std::process::Output, image: &Path) {
    expect_error_naming(
        output,
        &[
            &format!("{} is already signed (certificate ", image.display()),
            "build and sign a new --version instead",
        ],
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
    let keys = key_dir(tmp.path());
    let (ec_key, ec_cert) = make_key(&keys, "ec", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (_, rsa_cert) = rsa_key(&keys, "rsa");
    let built = build_ddi(tmp.path());
    let before = hashed_listing(&built.dir);

    let ec = sign(&built.image, &ec_key, &ec_cert);
    expect_error_naming(
        &ec,
        &[
            &format!(
                "signing twice with {} gave different signatures",
                ec_key.display()
            ),
            "use an RSA key",
        ],
    );
    let mismatched = sign(&built.image, &ec_key, &rsa_cert);
    expect_error_naming(
        &mismatched,
        &[&format!(
            "openssl could not sign with the key {} and certificate {} (is the key the certificate's?)",
            ec_key.display(),
            rsa_cert.display()
        )],
    );
    let after = hashed_listing(&built.dir);
    assert_eq!(
        before, after,
        "a refused signing changed the output directory"
    );

    let squashfs = built_image(&tmp.path().join("plain"));
    let plain = sign(&squashfs.image, &ec_key, &ec_cert);
    expect_error_naming(
        &plain,
        &[&format!(
            "{} is a bare SquashFS image, which has no hash tree to sign: build it with --format ddi",
            squashfs.image.display()
        )],
    );
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
    let out = cli(&[&"verify", &"--manifest", &manifest, &copy]);
    expect_stdout(&out, 1, &["MISMATCH  dm-verity", "hash tree differs"]);

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
    let out = cli(&[
        &"verify",
        &"--cert",
        &cert,
        &"--manifest",
        &manifest,
        &gpt_fixed,
    ]);
    // The signature partition is not covered by a GPT checksum: the file's own sha256 differs
    // from the manifest, and the signature check names the wrong root hash.
    expect_stdout(&out, 1, &["the signature is for root hash"]);
}

#[test]
fn inspect_and_diff_show_the_disk_image() {
    let tmp = tempdir();
    let keys = key_dir(tmp.path());
    let (key, cert) = rsa_key(&keys, "release");
    let built = build_ddi(tmp.path());
    let unsigned = tmp.path().join("unsigned.raw");
    fs::copy(&built.image, &unsigned).unwrap();
    expect_status(&sign(&built.image, &key, &cert), 0);

    let out = cli(&[&"inspect", &"--json", &built.image]);
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

    let text = expect_stdout(
        &cli(&[&"diff", &unsigned, &built.image]),
        1,
        &[
            "signature (unchecked): (none) -> names certificate ",
            "partition root-x86-64-verity-sig: only in b",
        ],
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
    for (_what, bytes, needle) in cases {
        let path = tmp.path().join("damaged.raw");
        fs::write(&path, &bytes).unwrap();
        let unreadable = format!("{} is not a readable DDI", path.display());
        let inspect = cli(&[&"inspect", &path]);
        expect_error_naming(&inspect, &[&unreadable, needle]);
        let verify = cli(&[&"verify", &"--manifest", &built.manifest, &path]);
        expect_stdout(&verify, 1, &[needle, "NOT VERIFIED"]);
    }
}

/// An arm64 DDI carries the arm64 partition types and names, and its tree verifies like the
/// x86-64 one (no kernel here runs arm64 DDIs: this is what can be checked without one).
#[test]
fn arm64_ddis_use_the_arm64_partition_types() {
    let tmp = tempdir();
    let payload = tmp.path().join("payload");
    write_payload(&payload, "hello");
    let built = Build::hello(&payload, &tmp.path().join("out"))
        .arch("arm64")
        .ddi()
        .run();
    let parts = sfdisk_partitions(&built.image);
    let named: Vec<(&str, &str)> = parts.iter().map(|p| (p.0.as_str(), p.3.as_str())).collect();
    assert_eq!(
        named,
        [
            ("root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
            ("root-arm64-verity", "df3300ce-d69f-4c92-978c-9bfb0f38d820"),
        ]
    );
    let (root, hash) = extract_root_and_tree(&built.image, &parts, tmp.path());
    let root_hash = manifest_root_hash(&built.manifest);
    let ok = veritysetup_verify(&root, &hash, &root_hash);
    assert!(ok.status.success(), "veritysetup: {}", stderr(&ok));
}

/// Rewrites the GPT of `bytes` as someone crafting an image would: `edit` changes the primary
/// header and entry array, then both copies get the change and every CRC32 is recomputed.
fn rewrite_gpt(bytes: &mut [u8], edit: impl FnOnce(&mut [u8], &mut [u8])) {
    let last = bytes.len() / 512 - 1;
    let mut header = bytes[512..1024].to_vec();
    let mut entries = bytes[1024..1024 + 16384].to_vec();
    edit(&mut header, &mut entries);
    header[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
    let seal = |h: &mut [u8]| {
        h[16..20].fill(0);
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
    };
    seal(&mut header);
    bytes[512..1024].copy_from_slice(&header);
    bytes[1024..1024 + 16384].copy_from_slice(&entries);
    let backup_entries = (last - 32) * 512;
    bytes[backup_entries..backup_entries + 16384].copy_from_slice(&entries);
    let mut backup = header.clone();
    backup[24..32].copy_from_slice(&(last as u64).to_le_bytes());
    backup[32..40].copy_from_slice(&1u64.to_le_bytes());
    backup[72..80].copy_from_slice(&((last - 32) as u64).to_le_bytes());
    seal(&mut backup);
    bytes[last * 512..last * 512 + 512].copy_from_slice(&backup);
}

fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Writes `bytes` as `name` next to a copy of the manifest and SHA256SUMS rewritten for them,
/// as whoever controls a download can: only the image's own structure can tell. Returns the
/// image's path.
fn crafted_download(dir: &Path, built: &Built, bytes: &[u8]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let name = built.image.file_name().unwrap();
    let image = dir.join(name);
    fs::write(&image, bytes).unwrap();
    let (old, new) = (sha256_file(&built.image), sha256_file(&image));
    for from in [&built.manifest, &built.sums] {
        let text = fs::read_to_string(from).unwrap().replace(&old, &new);
        fs::write(dir.join(from.file_name().unwrap()), text).unwrap();
    }
    image
}

/// 2^55 sectors of 512 bytes are 2^64 bytes: an LBA this much larger wraps to the same offset.
const WRAP: u64 = 1 << 55;

/// A GPT whose last usable sector is near u64::MAX and whose partitions start 2^55 sectors
/// further than they lie: in u64 arithmetic that wraps, every offset comes out right. sfdisk
/// does not take it for a GPT; `verify` and `sign` refuse it as a damaged table instead of
/// reading the bytes the wrapped offsets point at.
#[test]
fn a_gpt_whose_sector_arithmetic_wraps_is_refused_as_sfdisk_refuses_it() {
    let tmp = tempdir();
    let keys = key_dir(tmp.path());
    let (key, cert) = rsa_key(&keys, "release");
    let built = build_ddi(tmp.path());
    let mut bytes = fs::read(&built.image).unwrap();
    rewrite_gpt(&mut bytes, |header, entries| {
        set_u64(header, 48, u64::MAX - 32);
        for entry in entries.chunks_mut(128).take(2) {
            set_u64(entry, 32, get_u64(entry, 32) + WRAP);
            set_u64(entry, 40, get_u64(entry, 40) + WRAP);
        }
    });
    let image = crafted_download(&tmp.path().join("wrapped"), &built, &bytes);
    let sfdisk = tool("sfdisk").arg("--json").arg(&image).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&sfdisk.stdout).contains("\"gpt\""),
        "sfdisk reads it as a GPT: {}",
        stdout(&sfdisk)
    );
    let damaged = [
        &format!("{} is not a readable DDI", image.display()),
        "GPT usable range 34..=18446744073709551583 does not fit between the tables",
    ];
    let out = cli(&[&"verify", &image]);
    expect_stdout(&out, 1, &[damaged[1], "NOT VERIFIED"]);
    let signed = sign(&image, &key, &cert);
    expect_error_naming(&signed, &damaged);
    let inspect = cli(&[&"inspect", &image]);
    expect_error_naming(&inspect, &damaged);
}

/// The same wrap used to make the hash tree claim 2^51 blocks: the root and verity partitions
/// become 2^63 bytes long on paper, which the old check of the block count against them let
/// through, and `verify --cert` and `sign` died allocating 2^56 bytes (SIGABRT, exit 134).
#[test]
fn a_tree_claiming_more_blocks_than_the_file_holds_is_refused_without_allocating() {
    let tmp = tempdir();
    let (built, cert) = signed_ddi(tmp.path());
    let keys = tmp.path().join("keys");
    let parts = sfdisk_partitions(&built.image);
    let mut bytes = fs::read(&built.image).unwrap();
    rewrite_gpt(&mut bytes, |header, entries| {
        set_u64(header, 48, u64::MAX - 32);
        let root = &mut entries[..128];
        set_u64(root, 40, get_u64(root, 32) + (1 << 54));
        let verity = &mut entries[128..256];
        let first = get_u64(verity, 32) + WRAP;
        set_u64(verity, 32, first);
        set_u64(verity, 40, first + (1 << 54));
        let signature = &mut entries[256..384];
        set_u64(signature, 32, get_u64(signature, 32) + 2 * WRAP);
        set_u64(signature, 40, get_u64(signature, 40) + 2 * WRAP);
    });
    let superblock = (parts[1].1 * 512) as usize;
    set_u64(&mut bytes, superblock + 72, 1 << 51);
    let image = crafted_download(&tmp.path().join("huge"), &built, &bytes);
    let out = cli(&[&"verify", &"--cert", &cert, &image]);
    expect_stdout(
        &out,
        1,
        &["does not fit between the tables", "NOT VERIFIED"],
    );
    let signed = sign(&image, &keys.join("release.key"), &cert);
    expect_error_naming(
        &signed,
        &[
            &format!("{} is not a readable DDI", image.display()),
            "does not fit between the tables",
        ],
    );
}

/// A superblock claiming no data blocks is a damaged image (exit 1), not a usage error.
#[test]
fn a_tree_of_zero_blocks_is_a_damaged_image() {
    let tmp = tempdir();
    let built = build_ddi(tmp.path());
    let parts = sfdisk_partitions(&built.image);
    let mut bytes = fs::read(&built.image).unwrap();
    set_u64(&mut bytes, (parts[1].1 * 512) as usize + 72, 0);
    let image = crafted_download(&tmp.path().join("empty"), &built, &bytes);
    let out = cli(&[&"verify", &image]);
    expect_stdout(
        &out,
        1,
        &["MISMATCH  dm-verity", "0 data blocks", "NOT VERIFIED"],
    );
}

/// Without --cert nothing checks the signature, and the fingerprint in the partition is the
/// partition's own claim: a signature of random bytes is reported as present and unchecked,
/// never as "signed by".
#[test]
fn an_unchecked_signature_is_reported_as_unchecked() {
    let tmp = tempdir();
    let (built, cert) = signed_ddi(tmp.path());
    let parts = sfdisk_partitions(&built.image);
    let mut bytes = fs::read(&built.image).unwrap();
    let at = (parts[2].1 * 512) as usize;
    let json: serde_json::Value =
        serde_json::from_slice(bytes[at..].split(|&b| b == 0).next().unwrap()).unwrap();
    let forged = serde_json::json!({
        "rootHash": json["rootHash"],
        "certificateFingerprint": json["certificateFingerprint"],
        "signature": "cmFuZG9tIGJ5dGVzLCBub3QgYSBzaWduYXR1cmU=",
    })
    .to_string();
    bytes[at..at + 16384].fill(0);
    bytes[at..at + forged.len()].copy_from_slice(forged.as_bytes());
    let image = crafted_download(&tmp.path().join("forged"), &built, &bytes);

    // verify passes (the manifest and SHA256SUMS were rewritten for these bytes); neither
    // command calls the signature more than present.
    for (command, line) in [
        (
            "verify",
            "ok        signature: signature present, unchecked",
        ),
        ("inspect", "signature present, unchecked"),
    ] {
        let text = expect_stdout(&cli(&[&command, &image]), 0, &[line]);
        assert!(!text.contains("signed by"), "{command}: {text}");
    }
    let checked = cli(&[&"verify", &"--cert", &cert, &image]);
    expect_stdout(&checked, 1, &["MISMATCH  signature"]);
}

/// `--cert` means one certificate. openssl's -certfile also trusts `X509 CERTIFICATE` and
/// `TRUSTED CERTIFICATE` blocks, so a file holding the release certificate and another one
/// under either label would verify an image the other key signed: such files are refused.
#[test]
fn a_certificate_file_with_another_pem_block_is_refused() {
    let tmp = tempdir();
    let (built, release_cert) = signed_ddi(tmp.path());
    let keys = tmp.path().join("keys");
    let (_, other_cert) = rsa_key(&keys, "other");
    let release = fs::read_to_string(&release_cert).unwrap();
    let other = fs::read_to_string(&other_cert).unwrap();
    let labelled = |label: &str| {
        [
            format!("it holds a PEM block labelled \"{label}\""),
            "give a file with exactly one -----BEGIN CERTIFICATE----- block".into(),
        ]
    };
    for (label, needles) in [
        ("X509 CERTIFICATE", labelled("X509 CERTIFICATE")),
        ("TRUSTED CERTIFICATE", labelled("TRUSTED CERTIFICATE")),
        (
            "CERTIFICATE",
            [
                "it holds 2 certificates".into(),
                "give each certificate in a file of its own".into(),
            ],
        ),
    ] {
        let relabelled = other.replace("CERTIFICATE", label);
        // The key that signed the image (release) hides behind a certificate shown first.
        let file = write_text(tmp.path(), "bundle.pem", &format!("{relabelled}{release}"));
        let out = cli(&[&"verify", &"--cert", &file, &built.image]);
        let not_usable = format!("{} is not a usable certificate", file.display());
        expect_error_naming(&out, &[&not_usable, &needles[0], &needles[1]]);
    }
}

/// Two `sign` runs with different keys on one unsigned image: the directory lock is held from
/// the check to the write, so one signs and the other finds the image signed and refuses.
#[test]
fn concurrent_signs_with_two_keys_sign_once() {
    let tmp = tempdir();
    let keys = key_dir(tmp.path());
    let (key_a, cert_a) = rsa_key(&keys, "a");
    let (key_b, cert_b) = rsa_key(&keys, "b");
    let built = build_ddi(tmp.path());
    let pristine = tmp.path().join("pristine");
    fs::create_dir(&pristine).unwrap();
    for entry in fs::read_dir(&built.dir).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, pristine.join(path.file_name().unwrap())).unwrap();
    }
    for round in 0..3 {
        for entry in fs::read_dir(&pristine).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, built.dir.join(path.file_name().unwrap())).unwrap();
        }
        let spawn = |key: &Path, cert: &Path| {
            command(&[
                "sign".as_ref(),
                "--key".as_ref(),
                key.as_os_str(),
                "--cert".as_ref(),
                cert.as_os_str(),
                built.image.as_os_str(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        };
        let children = [spawn(&key_a, &cert_a), spawn(&key_b, &cert_b)];
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let succeeded = outputs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            succeeded,
            1,
            "round {round}: {} of 2 signs succeeded: {:?}",
            succeeded,
            outputs.iter().map(stderr).collect::<Vec<_>>()
        );
        let refused = outputs.iter().find(|o| !o.status.success()).unwrap();
        expect_already_signed(refused, &built.image);
    }
}
