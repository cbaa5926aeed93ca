//! Hostile input for the image reader behind `verify`, `inspect` and `diff`: truncated,
//! corrupted, random and crafted files must give a clear error, never a panic (the reader
//! turns a caught panic into an error saying it "crashed", which counts as a failure here), a
//! hang or an allocation the file does not justify. The long-running counterpart is the
//! cargo-fuzz target in fuzz/.

mod common;

use std::fs;
use std::io::Cursor;
use std::path::Path;

use common::*;
use sysext_assembler::image_reader::{Image, Limits};

/// The fuzz target's limits: the defaults, with a content budget that keeps every case fast.
const LIMITS: Limits = Limits {
    max_content_bytes: 64 << 20,
    ..Limits::DEFAULT
};

fn open(bytes: &[u8]) -> Result<Image, String> {
    Image::from_reader(Cursor::new(bytes.to_vec()), bytes.len() as u64, &LIMITS)
        .map_err(|e| format!("{e:#}"))
}

/// Fails if the reader had to catch a panic: that is a hole in the pre-checks.
fn assert_no_crash(result: &Result<Image, String>, what: &str) {
    if let Err(err) = result {
        assert!(
            !err.contains("crashed"),
            "{what}: the reader panicked inside: {err}"
        );
        assert!(!err.is_empty(), "{what}: empty error message");
    }
}

/// Small valid images in every compressor, with several blocks, fragments, a symlink and
/// nested directories, written by mksquashfs and by `build`: the seeds that mutations start from.
fn seed_images(dir: &Path) -> Vec<Vec<u8>> {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("usr/lib/deep/er")).unwrap();
    fs::create_dir_all(tree.join("opt/empty")).unwrap();
    fs::write(tree.join("usr/lib/deep/er/f"), "leaf\n").unwrap();
    let text: String = (0..900)
        .map(|i| format!("line {i} of a file that spans blocks\n"))
        .collect();
    fs::write(tree.join("usr/lib/blocks"), &text).unwrap();
    fs::write(tree.join("usr/lib/small"), "tail\n").unwrap();
    std::os::unix::fs::symlink("lib/small", tree.join("usr/link")).unwrap();
    let mut seeds = Vec::new();
    for comp in ["xz", "gzip", "zstd"] {
        let image = dir.join(format!("{comp}.raw"));
        mksquashfs(
            &tree,
            &image,
            &[
                "-all-root",
                "-nopad",
                "-b",
                "4096",
                "-comp",
                comp,
                "-all-time",
                "0",
                "-mkfs-time",
                "0",
            ],
        );
        seeds.push(fs::read(&image).unwrap());
    }
    // And the images `build` itself writes (its own layout: metadata order, fragment packing,
    // the extension-release file), so mutations also start from what the tool publishes.
    for comp in ["xz", "gzip", "zstd"] {
        let built = Build::new(&dir.join(format!("out-{comp}")))
            .tree(&tree)
            .compression(comp)
            .epoch(0)
            .run();
        seeds.push(fs::read(built.image).unwrap());
    }
    for (index, seed) in seeds.iter().enumerate() {
        let image = open(seed).expect("seed images are valid");
        // mksquashfs's: the tree's 10 entries; build's: plus extension-release.d and its file.
        assert_eq!(image.entries.len(), if index < 3 { 10 } else { 12 });
    }
    seeds
}

/// xorshift64*, seeded: the same mutations on every run (its own generator, not the shared
/// splitmix64 `Rng`, so the mutation sequences stay the ones these tests have always run).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutation: bit flips, interesting values, truncation, insertion or deletion, aimed half
/// the time at the superblock or the tables at the end, where the structure lives.
fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len().max(1);
        let at = match rng.below(4) {
            0 => rng.below(96.min(len)),
            1 => len - 1 - rng.below(len.min(400)),
            _ => rng.below(len),
        };
        match rng.below(6) {
            0 => {
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                const VALUES: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];
                let value = VALUES[rng.below(VALUES.len())].to_le_bytes();
                let width = [1, 2, 4][rng.below(3)];
                for (i, b) in value.iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            2 => data.truncate(at),
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let at = at.min(data.len());
                data.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                if at < end {
                    data.drain(at..end);
                }
            }
            _ => {
                if let Some(b) = data.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
        }
    }
    data
}

#[test]
fn thousands_of_seeded_mutations_never_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let seeds = seed_images(tmp.path());
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..4500 {
        let seed = &seeds[i % seeds.len()];
        let data = mutate(&mut rng, seed);
        let result = open(&data);
        assert_no_crash(&result, &format!("mutation {i}"));
        match result {
            Ok(image) => {
                ok += 1;
                // What was read must be readable again, file by file.
                for entry in &image.entries {
                    if entry.size.is_some_and(|s| s <= 1 << 16) {
                        image
                            .read_file(&entry.path, 1 << 16)
                            .expect("a listed file reads back");
                    }
                }
            }
            Err(_) => refused += 1,
        }
    }
    // Most mutations must be caught; some (in file data or unused bytes) are harmless.
    assert!(
        refused > 2000,
        "only {refused} of 4500 mutations refused ({ok} read)"
    );
    eprintln!("{ok} mutations read, {refused} refused");
}

#[test]
fn every_truncation_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in seed_images(tmp.path()) {
        // Up to the superblock's bytes_used: `build` pads its images to 4 KiB (as mksquashfs does
        // without -nopad), and cutting only padding leaves a whole image.
        let used = u64_at(&seed, 40) as usize;
        for len in (0..used).step_by(3) {
            let result = open(&seed[..len]);
            assert_no_crash(&result, &format!("truncated to {len}"));
            assert!(
                result.is_err(),
                "truncated to {len} of {} bytes but read",
                seed.len()
            );
        }
    }
}

#[test]
fn random_files_are_refused() {
    let mut rng = XorShift(42);
    for i in 0..500 {
        let len = rng.below(8192);
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && data.len() >= 96 {
            // A valid magic and version, so the reader gets past the first check.
            data[..4].copy_from_slice(b"hsqs");
            data[28..30].copy_from_slice(&4u16.to_le_bytes());
            data[30..32].copy_from_slice(&0u16.to_le_bytes());
        }
        let result = open(&data);
        assert_no_crash(&result, &format!("random file {i}"));
        assert!(result.is_err(), "random file {i} read as an image");
    }
}

/// An image whose inode table is stored uncompressed (-noI), so tests can patch inodes.
fn uncompressed_inodes_image(dir: &Path, tree_setup: impl FnOnce(&Path)) -> Vec<u8> {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    tree_setup(&tree);
    let image = dir.join("plain.raw");
    mksquashfs(
        &tree,
        &image,
        &[
            "-all-root",
            "-nopad",
            "-noI",
            "-noD",
            "-noF",
            "-all-time",
            "0",
        ],
    );
    fs::read(image).unwrap()
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}

#[test]
fn a_file_claiming_two_terabytes_is_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = uncompressed_inodes_image(tmp.path(), |tree| {
        fs::create_dir_all(tree.join("usr")).unwrap();
        fs::write(tree.join("usr/f"), "content\n").unwrap();
    });
    // First inode after the 2-byte metadata header: the file (mksquashfs writes children first).
    let inode = u64_at(&data, 64) as usize + 2;
    assert_eq!(
        u16::from_le_bytes([data[inode], data[inode + 1]]),
        2,
        "expected a basic file inode first"
    );
    // Basic file: 16-byte header, blocks_start, fragment, offset, then file_size.
    data[inode + 16 + 12..inode + 16 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = open(&data).err().expect("must be refused");
    assert!(
        err.contains("claims 4294967295 bytes") && err.contains("cut off"),
        "{err}"
    );
}

#[test]
fn an_absurd_inode_count_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = seed_images(tmp.path()).remove(0);
    data[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = open(&data).err().expect("must be refused");
    assert!(err.contains("4294967295 inodes"), "{err}");
}

#[test]
fn deep_nesting_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let mut deep = tree.join("usr");
    for _ in 0..300 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    let image = tmp.path().join("deep.raw");
    mksquashfs(&tree, &image, &["-all-root", "-nopad"]);
    let err = open(&fs::read(&image).unwrap())
        .err()
        .expect("must be refused");
    assert!(err.contains("nest deeper than 256"), "{err}");
}

#[test]
fn declared_content_beyond_the_budget_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir_all(tree.join("usr")).unwrap();
    // Zeros compress to almost nothing: 8 MiB of content in a tiny image.
    fs::write(tree.join("usr/zeros"), vec![0u8; 8 << 20]).unwrap();
    let image = tmp.path().join("zeros.raw");
    mksquashfs(&tree, &image, &["-all-root", "-nopad"]);
    let data = fs::read(&image).unwrap();
    assert!(data.len() < 64 << 10, "{} bytes", data.len());
    let small = Limits {
        max_content_bytes: 1 << 20,
        ..Limits::DEFAULT
    };
    let err = Image::from_reader(Cursor::new(data.clone()), data.len() as u64, &small)
        .err()
        .map(|e| format!("{e:#}"))
        .expect("must be refused");
    assert!(err.contains("declare 8388608 bytes of content"), "{err}");
    assert!(open(&data).is_ok(), "within the default budget it reads");
}

#[test]
fn commands_on_hostile_files_fail_cleanly() {
    let (tmp, built) = hello_feed();
    let random = tmp.path().join("random.raw");
    let mut rng = XorShift(7);
    fs::write(
        &random,
        (0..50_000).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let truncated = tmp.path().join("truncated.raw");
    let bytes = fs::read(&built.image).unwrap();
    // Cut into the image itself, not only into the padding to 4 KiB after bytes_used.
    let used = u64_at(&bytes, 40) as usize;
    fs::write(&truncated, &bytes[..used * 3 / 4]).unwrap();
    let empty = tmp.path().join("empty.raw");
    fs::write(&empty, "").unwrap();

    for bad in [&random, &truncated, &empty] {
        let unreadable = format!("{} is not a readable SquashFS image: ", bad.display());
        let output = cli(&[&"inspect", &bad]);
        expect_error_naming(&output, &[&unreadable]);

        let output = cli(&[&"diff", &built.image, &bad]);
        expect_error_naming(&output, &[&unreadable]);

        let output = cli(&[&"verify", &"--manifest", &built.manifest, &bad]);
        expect_stdout(
            &output,
            1,
            &[
                "MISMATCH  readable",
                &format!("the image cannot be read: {unreadable}"),
                "NOT VERIFIED",
            ],
        );
    }
}
