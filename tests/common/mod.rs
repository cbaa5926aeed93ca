//! Helpers shared by the integration tests: running the real binary, small seeded random
//! generators, and reading images back with Debian's squashfs-tools.

#![allow(dead_code)] // each test crate uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_sysext-assembler");

/// Runs `sysext-assembler` with `args` in a clean, fixed environment.
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("run sysext-assembler")
}

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("SOURCE_DATE_EPOCH");
    cmd
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails with a clear message when a required tool is missing: tests never skip silently.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; this test needs it (Debian: see README, tests section)"
    );
}

/// Fails unless running as root: `root_` tests need it and must not pass without it.
pub fn require_root() {
    let uid = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap());
    assert_eq!(
        uid, 0,
        "this test needs root (run cargo test as root, or skip with --skip root_)"
    );
}

/// A tiny deterministic generator (splitmix64): tests get reproducible "random" inputs without
/// another dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Compressible bytes: words from a small vocabulary.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "vrrp ",
            "instance ",
            "priority ",
            "100\n",
            "virtual_ipaddress ",
            "{ ",
            "} ",
            "advert_int 1\n",
        ];
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            out.extend_from_slice(WORDS[self.below(8) as usize].as_bytes());
        }
        out.truncate(len);
        out
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// One entry of a test payload, relative path and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Dir,
    File { contents: Vec<u8>, executable: bool },
    Symlink(String),
}

/// Writes `entries` below `root` in the given order, creating parents as needed (mode 0755).
pub fn materialise(root: &Path, entries: &[(String, Spec)]) {
    fs::create_dir_all(root).unwrap();
    for (path, spec) in entries {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        match spec {
            Spec::Dir => fs::create_dir_all(&full).unwrap(),
            Spec::File {
                contents,
                executable,
            } => {
                fs::write(&full, contents).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
            }
            Spec::Symlink(target) => std::os::unix::fs::symlink(target, &full).unwrap(),
        }
    }
}

/// Names of the files in `dir` (sorted), empty when `dir` does not exist.
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    sysext_assembler::hex(&Sha256::digest(fs::read(path).unwrap()))
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `unsquashfs -lln` of `image` with TZ=UTC, one line per entry.
pub fn unsquashfs_list(image: &Path) -> Vec<String> {
    require_tool("unsquashfs");
    let output = Command::new("unsquashfs")
        .arg("-lln")
        .arg(image)
        .env("TZ", "UTC")
        .output()
        .expect("run unsquashfs");
    assert!(
        output.status.success(),
        "unsquashfs -lln failed: {}",
        stderr(&output)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Extracts `image` into `dest` (which must not exist) with Debian's unsquashfs.
pub fn unsquashfs_extract(image: &Path, dest: &Path) {
    require_tool("unsquashfs");
    let output = Command::new("unsquashfs")
        .arg("-no-progress")
        .arg("-d")
        .arg(dest)
        .arg(image)
        .output()
        .expect("run unsquashfs");
    assert!(
        output.status.success(),
        "unsquashfs failed: {}",
        stderr(&output)
    );
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn out_image(out: &Path, name: &str, version: &str, arch: &str) -> PathBuf {
    out.join(format!("{name}-v{version}-{arch}.raw"))
}

/// The architecture of the machine running the tests, in systemd's naming.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "arm64",
        other => panic!("no systemd architecture name known for {other}"),
    }
}
