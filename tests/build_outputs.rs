//! `sysext-assembler build` end to end through the real binary: the outputs, their agreement
//! with each other and with Debian's unsquashfs, SHA256SUMS merging, the golden image hashes,
//! and the CLI's help and defaults.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sysext_assembler::feed::manifest::Manifest;
use sysext_assembler::payload::EntryKind;

const EPOCH: u64 = 1_700_000_000;
/// `EPOCH` as unsquashfs prints it with TZ=UTC.
const EPOCH_UTC: &str = "2023-11-14 22:13";

/// A small payload exercising every entry kind and block layout: an executable over two blocks,
/// text files that land in fragments, an empty file, a file of zero blocks (holes), symlinks and
/// an empty directory.
fn sample_payload() -> Vec<(String, Spec)> {
    let mut rng = Rng::new(42);
    let mut tool = rng.bytes(100_000);
    tool.extend(rng.text(200_000));
    vec![
        ("usr/bin/tool".into(), Spec::executable(tool)),
        ("usr/bin/tool-link".into(), Spec::Symlink("tool".into())),
        ("usr/lib/tool/data.txt".into(), Spec::file(rng.text(5000))),
        ("usr/lib/tool/empty".into(), Spec::file(Vec::new())),
        ("usr/lib/tool/zeros".into(), Spec::file(vec![0; 262_144])),
        (
            "usr/lib/systemd/system/tool.service".into(),
            Spec::file(
                b"[Unit]\nDescription=tool\n\n[Service]\nExecStart=/usr/bin/tool\n".to_vec(),
            ),
        ),
        ("usr/share/empty".into(), Spec::Dir),
        (
            "opt/tool/bin".into(),
            Spec::Symlink("../../usr/bin/tool".into()),
        ),
    ]
}

/// The build of `tool` 1.0 for Flatcar from `payload` into `out` that most tests here vary.
fn sample_build(out: &Path, payload: &Path) -> Build {
    Build::new(out)
        .name("tool")
        .version("1.0")
        .epoch(EPOCH)
        .tree(payload)
        .args(["--os", "flatcar", "--reload-manager"])
}

/// Builds `payload` ([`sample_build`]) with each entry's options into its own directory below
/// `dir` and compares the image hashes with the entries' all at once, so that a change shows
/// every hash that moved. Returns the images.
fn assert_golden_hashes(dir: &Path, payload: &Path, golden: &[(&[&str], &str)]) -> Vec<PathBuf> {
    let images: Vec<PathBuf> = golden
        .iter()
        .enumerate()
        .map(|(index, (options, _))| {
            let out = dir.join(format!("golden-{index}"));
            sample_build(&out, payload).args(*options).run().image
        })
        .collect();
    let actual: Vec<(&[&str], String)> = golden
        .iter()
        .zip(&images)
        .map(|((options, _), image)| (*options, sha256_file(image)))
        .collect();
    let expected: Vec<(&[&str], String)> = golden
        .iter()
        .map(|(options, hash)| (*options, hash.to_string()))
        .collect();
    assert_eq!(actual, expected);
    images
}

#[test]
fn outputs_are_complete_and_consistent() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let out = dir.path().join("out");
    // A restrictive umask must not leak into the output files' modes.
    let build = sample_build(&out, &payload).arch("amd64").args([
        "--update-url",
        "https://updates.example.org/tool",
        "--provenance",
        "source.sha256=abc",
        "--provenance",
        "nixpkgs=deadbeef",
    ]);
    let status = build.in_shell("umask 077; exec").status().unwrap();
    assert!(status.success());
    assert_eq!(
        dir_listing(&out),
        [
            "SHA256SUMS",
            "tool-v1.0-x86-64.manifest.json",
            "tool-v1.0-x86-64.raw",
            "tool.conf"
        ]
    );
    for name in dir_listing(&out) {
        let mode = fs::metadata(out.join(&name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}");
    }

    let image = out.join("tool-v1.0-x86-64.raw");
    let image_sha = sha256_file(&image);
    assert_eq!(
        fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
        format!("{image_sha}  tool-v1.0-x86-64.raw\n")
    );
    let manifest = Manifest::from_json(
        &fs::read_to_string(out.join("tool-v1.0-x86-64.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.image.file, "tool-v1.0-x86-64.raw");
    assert_eq!(manifest.image.sha256, image_sha);
    assert_eq!(manifest.image.size, fs::metadata(&image).unwrap().len());
    assert_eq!(
        manifest.image.size % 4096,
        0,
        "image is padded to 4 KiB like mksquashfs's"
    );
    assert_eq!(
        (manifest.arch.to_string().as_str(), manifest.os.as_str()),
        ("x86-64", "flatcar")
    );
    assert_eq!(manifest.sysext_level.as_deref(), Some("1.0"));
    assert!(manifest.reload_manager);
    // The defaults: xz, 1 MiB blocks, the x86 BCJ filter for an x86-64 image.
    assert_eq!(
        (
            manifest.compression.to_string().as_str(),
            manifest.block_size,
            manifest.xz_filter.to_string().as_str(),
            manifest.epoch
        ),
        ("xz", 1 << 20, "x86", 1_700_000_000)
    );
    assert_eq!(manifest.tool.name, "sysext-assembler");
    assert_eq!(
        manifest.provenance,
        BTreeMap::from([
            ("nixpkgs".to_string(), "deadbeef".to_string()),
            ("source.sha256".to_string(), "abc".to_string())
        ])
    );
    let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "opt",
            "opt/tool",
            "opt/tool/bin",
            "usr",
            "usr/bin",
            "usr/bin/tool",
            "usr/bin/tool-link",
            "usr/lib",
            "usr/lib/extension-release.d",
            "usr/lib/extension-release.d/extension-release.tool",
            "usr/lib/systemd",
            "usr/lib/systemd/system",
            "usr/lib/systemd/system/tool.service",
            "usr/lib/tool",
            "usr/lib/tool/data.txt",
            "usr/lib/tool/empty",
            "usr/lib/tool/zeros",
            "usr/share",
            "usr/share/empty",
        ]
    );
    let tool = manifest
        .entries
        .iter()
        .find(|e| e.path == "usr/bin/tool")
        .unwrap();
    assert_eq!(
        (tool.kind, tool.mode.as_str(), tool.size),
        (EntryKind::File, "0755", Some(300_000))
    );
    let link = manifest
        .entries
        .iter()
        .find(|e| e.path == "opt/tool/bin")
        .unwrap();
    assert_eq!(
        (link.kind, link.mode.as_str(), link.target.as_deref()),
        (EntryKind::Symlink, "0777", Some("../../usr/bin/tool"))
    );

    let extracted = dir.path().join("extracted");
    unsquashfs_extract(&image, &extracted);
    assert_eq!(
        fs::read_to_string(extracted.join("usr/lib/extension-release.d/extension-release.tool"))
            .unwrap(),
        "ID=flatcar\nSYSEXT_LEVEL=1.0\nARCHITECTURE=x86-64\nEXTENSION_RELOAD_MANAGER=1\n"
    );

    // The transfer file's settings, in order (the comments around them are prose).
    let transfer = fs::read_to_string(out.join("tool.conf")).unwrap();
    let settings: Vec<&str> = transfer
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        settings,
        [
            "[Transfer]",
            "Verify=yes",
            "[Source]",
            "Type=url-file",
            "Path=https://updates.example.org/tool/",
            "MatchPattern=tool-v@v-%a.raw",
            "[Target]",
            "Type=regular-file",
            "Path=/opt/extensions/tool",
            "MatchPattern=tool-v@v-%a.raw",
            "CurrentSymlink=/etc/extensions/tool.raw",
            "InstancesMax=3",
        ],
        "{transfer}"
    );
}

/// unsquashfs (an independent reader) lists exactly the manifest's entries, all owned by 0/0
/// with the epoch as mtime (the root directory included), and extracts the input unchanged.
#[test]
fn unsquashfs_agrees_with_manifest_and_input() {
    for compression in ["xz", "zstd", "gzip"] {
        let dir = tempdir();
        let payload = dir.path().join("payload");
        let spec = sample_payload();
        materialise(&payload, &spec);
        let built = sample_build(&dir.path().join("out"), &payload)
            .compression(compression)
            .run();
        let image = built.image;
        let manifest = Manifest::from_json(&fs::read_to_string(built.manifest).unwrap()).unwrap();

        let mut expected = vec![format!("drwxr-xr-x 0/0 {EPOCH_UTC} squashfs-root")];
        for entry in &manifest.entries {
            let (perms, suffix) = match (entry.kind, entry.mode.as_str()) {
                (EntryKind::Dir, "0755") => ("drwxr-xr-x", String::new()),
                (EntryKind::File, "0755") => ("-rwxr-xr-x", String::new()),
                (EntryKind::File, "0644") => ("-rw-r--r--", String::new()),
                (EntryKind::Symlink, "0777") => (
                    "lrwxrwxrwx",
                    format!(" -> {}", entry.target.as_ref().unwrap()),
                ),
                other => panic!("unexpected {other:?}"),
            };
            expected.push(format!(
                "{perms} 0/0 {EPOCH_UTC} squashfs-root/{}{suffix}",
                entry.path
            ));
        }
        let listed: Vec<String> = unsquashfs_list(&image)
            .iter()
            .map(|line| {
                // drop the size column: directory sizes are an encoding detail, file sizes are
                // checked on the extracted files below
                let mut parts = line.split_whitespace();
                let perms = parts.next().unwrap();
                let owner = parts.next().unwrap();
                let _size = parts.next().unwrap();
                let date = parts.next().unwrap();
                let time = parts.next().unwrap();
                let rest: Vec<&str> = parts.collect();
                format!("{perms} {owner} {date} {time} {}", rest.join(" "))
            })
            .collect();
        assert_eq!(listed, expected, "{compression}");

        let superblock = unsquashfs(&[&"-s", &image]);
        assert!(
            superblock.contains("Tue Nov 14 22:13:20 2023"),
            "{superblock}"
        );
        assert!(
            superblock.contains(&format!("Compression {compression}")),
            "{superblock}"
        );
        assert!(superblock.contains("Block size 1048576"), "{superblock}");
        // one id (0, for every uid and gid) and no extended attributes at all
        assert!(superblock.contains("Number of ids 1\n"), "{superblock}");
        assert!(
            superblock.contains("Number of xattr ids 0\n"),
            "{superblock}"
        );

        let extracted = dir.path().join("extracted");
        unsquashfs_extract(&image, &extracted);
        for (path, spec) in &spec {
            let full = extracted.join(path);
            match spec {
                Spec::Dir => assert!(full.is_dir(), "{path}"),
                Spec::File {
                    contents,
                    executable,
                } => {
                    assert_eq!(&fs::read(&full).unwrap(), contents, "{path}");
                    let mode = fs::metadata(&full).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, if *executable { 0o755 } else { 0o644 }, "{path}");
                }
                Spec::Symlink(target) => {
                    assert_eq!(
                        fs::read_link(&full).unwrap().to_str().unwrap(),
                        target,
                        "{path}"
                    )
                }
            }
        }
        for entry in manifest
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
        {
            assert_eq!(
                Some(sha256_file(&extracted.join(&entry.path))),
                entry.sha256,
                "{}",
                entry.path
            );
        }
    }
}

/// A generated tree beyond what the sample covers: 700 small files whose tails fill many fragment
/// blocks, duplicates (stored once), incompressible random data (blocks stored uncompressed) and
/// enough inodes and directory entries that the metadata tables span several 8 KiB blocks.
fn large_generated_payload() -> Vec<(String, Spec)> {
    let mut rng = Rng::new(0x901d);
    let shared = rng.text(3000);
    let random = rng.bytes(400_000);
    let mut entries: Vec<(String, Spec)> = (0..700)
        .map(|i| {
            let contents = if i % 50 == 7 {
                shared.clone() // duplicates
            } else {
                let len = 500 + rng.below(2500) as usize;
                rng.text(len)
            };
            (
                format!("usr/share/gen/d{:02}/file-{i:04}.txt", i % 23),
                Spec::File {
                    contents,
                    executable: i % 9 == 0,
                },
            )
        })
        .collect();
    for name in ["random.bin", "random-copy.bin"] {
        entries.push((format!("usr/lib/gen/{name}"), Spec::file(random.clone())));
    }
    entries
}

/// Golden hashes of the generated tree, per compressor: the layouts the small sample cannot
/// reach (many fragment blocks, deduplicated files, uncompressed blocks, multi-block metadata).
/// Nix's check phase runs it in the release profile (tests/nix/sandbox shows that it passes there).
#[test]
fn golden_image_hashes_of_a_generated_tree() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &large_generated_payload());
    // 128 KiB blocks: at the default 1 MiB the tails fill too few fragment blocks.
    let golden: [(&[&str], &str); 3] = [
        (
            &["--compression", "xz", "--block-size", "128K"],
            "24da4f2399119d9aa629874822b390be7cd238d5ae6ac114db366a3bfdf2758f",
        ),
        (
            &["--compression", "zstd", "--block-size", "128K"],
            "7d1232d281cac8a6959fec3cd8f265f2a260574bb8111b991268c53a4cbc4626",
        ),
        (
            &["--compression", "gzip", "--block-size", "128K"],
            "9d066f238306d2b7eb4a2b570b3b968e28335892c8436c94a611daebae8d5d99",
        ),
    ];
    for (image, (options, _)) in assert_golden_hashes(dir.path(), &payload, &golden)
        .iter()
        .zip(golden)
    {
        // The layouts this golden exists for are really there (superblock fields).
        let image = fs::read(image).unwrap();
        let u32_at = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
        assert!(u32_at(4) > 700, "inode count {}", u32_at(4));
        let fragments = u32_at(16);
        assert!(fragments >= 4, "{options:?}: {fragments} fragment blocks");
        let inode_table_bytes = u64_at(72) - u64_at(64);
        assert!(
            inode_table_bytes > 8192 / 2,
            "{options:?}: the inode table takes {inode_table_bytes} bytes"
        );
    }
}

/// Golden hash of the sample payload as a DDI: the SquashFS, its hash tree, the salt and every
/// UUID derived from content, the GPT around them. A change means every published DDI would
/// change; update only on purpose.
#[test]
fn golden_ddi_hash() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    assert_golden_hashes(
        dir.path(),
        &payload,
        &[(
            &["--format", "ddi"],
            "d0ac3a84634730f842bde43f4e5d043fd56bf909ca36f48899d879065e0d8ea7",
        )],
    );
}

/// Golden hashes for the xz filters and block sizes: the sample payload plus machine code for
/// each filter, so the filtered path is taken where it wins and the plain one elsewhere.
#[test]
fn golden_image_hashes_with_xz_filters_and_block_sizes() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    let mut entries = sample_payload();
    for (arch, name) in [("x86-64", "code-x86"), ("arm64", "code-arm64")] {
        let code = branchy_code(arch, 400_000);
        entries.push((format!("usr/bin/{name}"), Spec::file(code)));
    }
    materialise(&payload, &entries);
    let golden: [(&[&str], &str); 3] = [
        (
            &["--block-size", "1M", "--xz-filter", "x86"],
            "fe71e2428e44c9ed1f1856e3d242591f41bfd4202b2341475a653e17c1c0cf52",
        ),
        (
            &["--block-size", "1M", "--xz-filter", "arm64"],
            "92c2bcb9a3e0b03c4f5c8cc92e9b95e201a9a7c960047e162d29832d7a57ab6c",
        ),
        (
            &["--block-size", "4K", "--xz-filter", "x86"],
            "e3bf97c54e27ab590c489937e433e6b07186ccd183c7d1b4fb9999b58ec33daa",
        ),
    ];
    assert_golden_hashes(dir.path(), &payload, &golden);
}

/// The image hash of a fixed payload, per compressor. A change here means every published image
/// would change: a backhand, liblzma, zstd or zlib-rs bump, a different compressor build (system
/// library instead of the pinned one), or a change in this tool. Update only on purpose, and say
/// why in the commit.
#[test]
fn golden_image_hashes() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let golden: [(&[&str], &str); 3] = [
        (
            &["--compression", "xz"],
            "1b6f2bd6e1781902743b66ce56ea3da5c7a2996ad00cfb537038714c6b6c7749",
        ),
        (
            &["--compression", "zstd"],
            "8a22f5ff8962b4fc417153d06b88c81b2aed09615a7251fc8782c620aca27217",
        ),
        (
            &["--compression", "gzip"],
            "d92e0ccea30c70334b368f63d420e15aaab73e168abc2a5ca28fc95d257751db",
        ),
    ];
    assert_golden_hashes(dir.path(), &payload, &golden);
}

#[test]
fn sha256sums_collects_versions_and_arches() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let foreign = format!("{}  other-v9-arm64.raw\n", "c".repeat(64));
    fs::write(out.join("SHA256SUMS"), &foreign).unwrap();
    for (version, arch) in [
        ("2.0", "arm64"),
        ("1.0", "x86-64"),
        ("1.0", "aarch64"),
        ("v2.0", "x86_64"),
    ] {
        Build::new(&out)
            .name("tool")
            .version(version)
            .arch(arch)
            .epoch(EPOCH)
            .tree(&payload)
            .run();
    }
    // Replace one with different contents on purpose: its line is replaced, not added.
    let extra = dir.path().join("extra");
    materialise(&extra, &[("usr/share/tool/new".into(), Spec::file("new"))]);
    Build::new(&out)
        .name("tool")
        .version("1.0")
        .epoch(EPOCH)
        .tree(&payload)
        .tree(&extra)
        .args(["--replace-published"])
        .run();

    let images = [
        "tool-v1.0-arm64.raw",
        "tool-v1.0-x86-64.raw",
        "tool-v2.0-arm64.raw",
        "tool-v2.0-x86-64.raw",
    ];
    let mut expected = foreign.clone();
    let mut lines: Vec<String> = images
        .iter()
        .map(|i| format!("{}  {i}\n", sha256_file(&out.join(i))))
        .collect();
    lines.push(foreign);
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    expected.clear();
    for line in lines {
        expected.push_str(&line);
    }
    assert_eq!(
        fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
        expected
    );
    assert!(
        !dir_listing(&out).iter().any(|n| n.starts_with('.')),
        "stray temporary files: {:?}",
        dir_listing(&out)
    );
}

#[test]
fn epoch_comes_from_option_then_source_date_epoch_then_zero() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let build = |out: &str| Build::new(&dir.path().join(out)).tree(&payload);
    let epoch_of = |build: Build| {
        Manifest::from_json(&fs::read_to_string(build.run().manifest).unwrap())
            .unwrap()
            .epoch
    };
    assert_eq!(epoch_of(build("a")), 0);
    assert_eq!(
        epoch_of(build("b").env("SOURCE_DATE_EPOCH", "1234567")),
        1_234_567
    );
    assert_eq!(
        epoch_of(build("c").epoch(42).env("SOURCE_DATE_EPOCH", "1234567")),
        42
    );
    build("d").env("SOURCE_DATE_EPOCH", "yesterday").refused(&[
        "SOURCE_DATE_EPOCH=\"yesterday\" is not a whole number of seconds",
        "fix it or pass --epoch",
    ]);
}

#[test]
fn help_shows_an_example() {
    let output = run(&["build", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "Example:",
        "--tree",
        "--file",
        "--update-url",
        "--compression",
        "SOURCE_DATE_EPOCH",
    ] {
        assert!(help.contains(needle), "{needle} missing from help:\n{help}");
    }
}

#[test]
fn file_option_sets_mode_from_executable_bit() {
    let dir = tempdir();
    let exe = dir.path().join("exe");
    fs::write(&exe, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).unwrap();
    let doc = dir.path().join("doc");
    fs::write(&doc, b"doc").unwrap();
    fs::set_permissions(&doc, fs::Permissions::from_mode(0o600)).unwrap();
    let built = Build::new(&dir.path().join("out"))
        .file("usr/bin/t", &exe)
        .file("usr/share/doc/t/README", &doc)
        .run();
    let manifest = Manifest::from_json(&fs::read_to_string(built.manifest).unwrap()).unwrap();
    let modes: Vec<(&str, &str)> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| (e.path.as_str(), e.mode.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            ("usr/bin/t", "0755"),
            ("usr/lib/extension-release.d/extension-release.t", "0644"),
            ("usr/share/doc/t/README", "0644"),
        ]
    );
    assert_eq!(manifest.os, "_any");
    assert_eq!(manifest.sysext_level, None);
}

/// A build killed mid-way leaves a hidden temporary file; the next build into the same directory
/// removes it (the directory lock rules out that another build is still writing it).
#[test]
fn stale_temporary_files_are_removed() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(
        out.join(".tool-v1.0-x86-64.raw.Xy12Ab.tmp"),
        b"half an image",
    )
    .unwrap();
    fs::write(out.join(".SHA256SUMS.Qw34Er.tmp"), b"half a list").unwrap();
    fs::write(out.join(".unrelated"), b"kept").unwrap();
    sample_build(&out, &payload).run();
    assert_eq!(
        dir_listing(&out),
        [
            ".unrelated",
            "SHA256SUMS",
            "tool-v1.0-x86-64.manifest.json",
            "tool-v1.0-x86-64.raw"
        ]
    );
}

/// The compressors are linked in, built from the sources Cargo.lock pins, not taken from the
/// system's shared libraries (which would make the bytes depend on the machine).
#[test]
fn no_system_compression_library_is_linked() {
    require_tool("readelf");
    let output = Command::new("readelf").args(["-d", BIN]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dynamic = String::from_utf8_lossy(&output.stdout);
    for library in ["liblzma", "libzstd", "libz.so", "libdeflate"] {
        assert!(
            !dynamic.contains(library),
            "{library} is linked dynamically:\n{dynamic}"
        );
    }
}

/// Builds running at the same time into one directory (say, one per arch) must not lose each
/// other's SHA256SUMS lines: the directory is locked from reading SHA256SUMS to renaming it.
#[test]
fn concurrent_builds_keep_every_sha256sums_line() {
    let dir = tempdir();
    let payload = dir.path().join("payload");
    materialise(&payload, &sample_payload());
    let out = dir.path().join("out");
    let mut expected = Vec::new();
    let children: Vec<_> = (0..3)
        .flat_map(|version| ["x86-64", "arm64"].map(|arch| (version, arch)))
        .map(|(version, arch)| {
            expected.push(format!("tool-v{version}-{arch}.raw"));
            Build::new(&out)
                .name("tool")
                .version(&version.to_string())
                .arch(arch)
                .tree(&payload)
                .compression("gzip")
                .command()
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    expected.sort();
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    assert_eq!(listed, expected);
    for line in sums.lines() {
        assert_eq!(&line[..64], sha256_file(&out.join(&line[66..])), "{line}");
    }
}

/// Identical large files are stored once (backhand deduplicates them, like mksquashfs) and still
/// read back correctly under both names.
#[test]
fn duplicate_files_are_stored_once_and_read_back() {
    let dir = tempdir();
    let mut rng = Rng::new(5);
    let big = rng.bytes(400_000);
    let payload = dir.path().join("payload");
    materialise(
        &payload,
        &[
            ("usr/lib/a/big".into(), Spec::file(big.clone())),
            ("usr/lib/b/big".into(), Spec::executable(big.clone())),
            ("usr/lib/c/other".into(), Spec::file(rng.bytes(1000))),
        ],
    );
    let image = sample_build(&dir.path().join("out"), &payload).run().image;
    // random data does not compress: two stored copies would need more than 800,000 bytes
    assert!(fs::metadata(&image).unwrap().len() < 600_000);
    let extracted = dir.path().join("extracted");
    unsquashfs_extract(&image, &extracted);
    assert_eq!(fs::read(extracted.join("usr/lib/a/big")).unwrap(), big);
    assert_eq!(fs::read(extracted.join("usr/lib/b/big")).unwrap(), big);
    assert_eq!(
        fs::read(extracted.join("usr/lib/c/other")).unwrap().len(),
        1000
    );
}
