//! The determinism guarantee as a property test: over generated payloads, everything the image
//! must not depend on is varied (creation order, mtimes, permission bits other than the
//! executable bit, umask, input location and how the payload is split across --tree/--file,
//! TZ, locale, SOURCE_DATE_EPOCH vs --epoch, the number of cores) and the image and manifest
//! must stay byte-identical. Owners need root: see `root_determinism_ignores_owners` in
//! `root_sysext.rs`.

mod common;

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use sysext_assembler::payload::Payload;
use sysext_assembler::squashfs::compress::{Compression, XzFilter};
use sysext_assembler::squashfs::writer::{self, ImageOptions};

const BLOCK: usize = 131_072;

/// A random payload: nested directories under usr/ and opt/, files of sizes around every
/// boundary that matters to the writer (empty, fragment-sized, exactly one block, just over,
/// several blocks, all-zero blocks), random or compressible contents, executable or not, and
/// relative symlinks, sometimes a duplicate file.
pub fn generate(rng: &mut Rng) -> Vec<(String, Spec)> {
    let mut dirs = vec![
        "usr/bin".to_string(),
        "usr/lib/gen".to_string(),
        "opt/gen".to_string(),
    ];
    let mut entries: Vec<(String, Spec)> = Vec::new();
    for _ in 0..rng.below(4) {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let dir = format!("{parent}/d{}", rng.below(1000));
        entries.push((dir.clone(), Spec::Dir));
        dirs.push(dir);
    }
    let count = 3 + rng.below(25);
    let mut files = Vec::new();
    for i in 0..count {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let name = match rng.below(4) {
            0 => format!("f{i}"),
            1 => format!("f{i}.conf"),
            2 => format!("F-{i}"),
            _ => format!("f{i}_x"),
        };
        let size = match rng.below(8) {
            0 => 0,
            1 => 1 + rng.below(64) as usize,
            2 | 3 => 1 + rng.below(20_000) as usize,
            4 => BLOCK - 1 + rng.below(3) as usize,
            5 => BLOCK * 2 + rng.below(BLOCK as u64) as usize,
            6 => rng.below(BLOCK as u64) as usize,
            _ => 1 + rng.below(3000) as usize,
        };
        let contents = match rng.below(4) {
            0 => rng.bytes(size),
            1 => vec![0; size],
            _ => rng.text(size),
        };
        let path = format!("{parent}/{name}");
        if entries.iter().any(|(p, _)| p == &path) {
            continue;
        }
        files.push(path.clone());
        entries.push((
            path,
            Spec::File {
                contents,
                executable: rng.below(3) == 0,
            },
        ));
    }
    // Sometimes a copy of a multi-block file: backhand stores duplicates once.
    let large = entries.iter().find_map(|(_, spec)| match spec {
        Spec::File { contents, .. } if contents.len() >= BLOCK => Some(contents.clone()),
        _ => None,
    });
    if let (Some(contents), 0) = (large, rng.below(2)) {
        entries.push((
            "opt/gen/copy".into(),
            Spec::File {
                contents,
                executable: false,
            },
        ));
    }
    for i in 0..rng.below(4) {
        let target = &files[rng.below(files.len() as u64) as usize];
        let link = format!("usr/lib/gen/link{i}");
        if entries.iter().any(|(p, _)| p == &link) {
            continue;
        }
        // relative from usr/lib/gen
        entries.push((link, Spec::Symlink(format!("../../../{target}"))));
    }
    entries
}

/// Writes `entries` like `materialise`, but in shuffled order, with random non-executable
/// permission bits and random mtimes on files and directories.
fn materialise_shuffled(root: &Path, entries: &[(String, Spec)], rng: &mut Rng) {
    let mut shuffled = entries.to_vec();
    rng.shuffle(&mut shuffled);
    materialise(root, &shuffled);
    for (path, spec) in &shuffled {
        let full = root.join(path);
        let mode = match spec {
            Spec::File {
                executable: true, ..
            } => [0o700, 0o750, 0o755, 0o775, 0o555, 0o744][rng.below(6) as usize],
            Spec::File {
                executable: false, ..
            } => [0o600, 0o640, 0o644, 0o664, 0o444, 0o666][rng.below(6) as usize],
            Spec::Dir => [0o700, 0o750, 0o755, 0o775][rng.below(4) as usize],
            Spec::Symlink(_) => continue,
        };
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut all = Vec::new();
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = entry.unwrap();
        if !entry.path_is_symlink() {
            all.push(entry.path().to_path_buf());
        }
    }
    for path in all {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(rng.below(2_000_000_000));
        let times = FileTimes::new().set_modified(when).set_accessed(when);
        File::open(&path).unwrap().set_times(times).unwrap();
    }
}

fn read_outputs(built: &Built) -> (Vec<u8>, Vec<u8>) {
    (
        fs::read(&built.image).unwrap(),
        fs::read(&built.manifest).unwrap(),
    )
}

#[test]
fn same_payload_same_bytes_over_generated_trees() {
    require_tool("taskset");
    for seed in 0..10u64 {
        let mut rng = Rng::new(seed);
        let entries = generate(&mut rng);
        let compression = ["xz", "zstd", "gzip"][seed as usize % 3];
        // The image settings vary with the seed too: block sizes, and for xz the BCJ filters.
        let block_size = ["128K", "4K", "1M", "64K", "256K"][seed as usize % 5];
        let xz_filter = match compression {
            "xz" => ["none", "x86", "arm64"][(seed as usize / 3) % 3],
            _ => "none",
        };
        // Every other seed writes a DDI: the hash tree, salt and UUIDs must be as stable.
        let format = ["squashfs", "ddi"][seed as usize % 2];
        let settings = [
            "--compression",
            compression,
            "--block-size",
            block_size,
            "--xz-filter",
            xz_filter,
            "--format",
            format,
        ];
        let dir = tempdir();

        // Reference: one tree, creation in sorted order, UTC, all cores, --epoch.
        let a = dir.path().join("a");
        materialise(&a, &entries);
        let reference = Build::new(&dir.path().join("out-a"))
            .name("gen")
            .epoch(1_234_567_890)
            .tree(&a)
            .args(settings);
        let output = reference.output();
        assert!(output.status.success(), "seed {seed}: {}", stderr(&output));

        // Variant: shuffled creation, modes and mtimes; payload split over two trees at another
        // depth plus one --file; umask 027; one core; another TZ and locale; SOURCE_DATE_EPOCH.
        let b1 = dir.path().join("x/y/z/b1");
        let b2 = dir.path().join("b2");
        let (first, second) = entries.split_at(entries.len() / 2);
        let mut first = first.to_vec();
        let mut file_arg = None;
        if let Some(pos) = first
            .iter()
            .position(|(_, s)| matches!(s, Spec::File { .. }))
        {
            let (path, spec) = first.remove(pos);
            let src = dir.path().join("single-file");
            materialise_shuffled(
                dir.path().join("single").as_path(),
                &[("src".into(), spec)],
                &mut rng,
            );
            fs::rename(dir.path().join("single/src"), &src).unwrap();
            file_arg = Some(format!("{path}={}", src.display()));
        }
        materialise_shuffled(&b1, &first, &mut rng);
        materialise_shuffled(&b2, second, &mut rng);
        let mut variant = Build::new(&dir.path().join("out-b"))
            .name("gen")
            .tree(&b2)
            .tree(&b1)
            .args(settings)
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .env("TZ", "Pacific/Chatham")
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "de_DE.UTF-8");
        if let Some(file_arg) = &file_arg {
            variant = variant.args(["--file", file_arg]);
        }
        let output = variant
            .in_shell("umask 027; exec taskset -c 0")
            .output()
            .unwrap();
        assert!(output.status.success(), "seed {seed}: {}", stderr(&output));

        let (image_a, manifest_a) = read_outputs(&reference.outputs());
        let (image_b, manifest_b) = read_outputs(&variant.outputs());
        assert!(image_a == image_b, "seed {seed}: images differ");
        assert_eq!(
            String::from_utf8(manifest_a).unwrap(),
            String::from_utf8(manifest_b).unwrap(),
            "seed {seed}"
        );
    }
}

/// The parallel compressor's prediction of backhand's block order is exact: every planned
/// block is used (a wrong prediction would still give the same bytes, only slower; this test
/// keeps it from silently regressing).
#[test]
fn compression_plan_matches_backhand() {
    for seed in 100..112u64 {
        let mut rng = Rng::new(seed);
        let entries = generate(&mut rng);
        let dir = tempdir();
        let root = dir.path().join("tree");
        materialise(&root, &entries);
        let mut payload = Payload::new();
        payload.add_tree(&root).unwrap();
        for (compression, block_size, xz_filter) in [
            (Compression::Xz, 128 << 10, XzFilter::None),
            (Compression::Xz, 1 << 20, XzFilter::X86),
            (Compression::Xz, 64 << 10, XzFilter::Arm64),
            (Compression::Zstd, 128 << 10, XzFilter::None),
            (Compression::Gzip, 4 << 10, XzFilter::None),
        ] {
            let options = ImageOptions {
                compression,
                block_size,
                xz_filter,
                epoch: 7,
            };
            let mut out = tempfile::tempfile().unwrap();
            let (_, plan_use) =
                writer::write_image_with_stats(&payload, options, &mut out).unwrap();
            assert_eq!(
                plan_use.used, plan_use.planned,
                "seed {seed} {compression} {block_size} {xz_filter}"
            );
        }
    }
}
