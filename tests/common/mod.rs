//! Helpers shared by the integration tests (tests/*.rs, and tests/docs through `#[path]`):
//! running the real binary, building real images with `build` through the one builder,
//! [`Build`] (or with Debian's mksquashfs where a test needs an image `build` refuses to write),
//! asserting refusals (exit 2, the message, nothing written), small seeded random generators,
//! and checking results with independent tools (Debian's squashfs-tools, coreutils, PyYAML).

#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_sysext-assembler");

/// Runs `sysext-assembler` with `args` in a clean, fixed environment.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    command(args).output().expect("run sysext-assembler")
}

/// [`run`] with strings and paths alike: `cli(&[&"verify", &"--cert", &cert, &image])`.
pub fn cli(args: &[&dyn AsRef<OsStr>]) -> Output {
    run(&args.iter().map(|arg| arg.as_ref()).collect::<Vec<&OsStr>>())
}

/// `sysext-assembler` with `args` in a clean, fixed environment, for a test to add to.
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("SOURCE_DATE_EPOCH");
    cmd
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit status and that nothing panicked, showing the output on failure.
pub fn expect_status(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(
        !stderr(output).contains("panicked"),
        "panic: {}",
        stderr(output)
    );
}

/// Asserts an error (exit 2, not a mismatch), that nothing panicked, and that the message
/// holds every one of `needles`: what is wrong and, where the command says it, what to do.
pub fn expect_error_naming(output: &Output, needles: &[&str]) {
    expect_status(output, 2);
    assert_contains(&stderr(output), needles);
}

/// Asserts that `text` holds every one of `needles`, showing the text when one is missing.
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// Asserts exit status `code` (no panic) and that stdout holds every one of `needles`; returns
/// stdout, for the reports of `verify`, `diff` and `inspect`.
pub fn expect_stdout(output: &Output, code: i32, needles: &[&str]) -> String {
    expect_status(output, code);
    let text = stdout(output);
    assert_contains(&text, needles);
    text
}

/// Fails with a clear message when a required tool is missing: tests never skip silently.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; this test needs it (.ci/run installs the Debian packages the tests use)"
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

impl Spec {
    /// A regular file, mode 0644.
    pub fn file(contents: impl Into<Vec<u8>>) -> Spec {
        Spec::File {
            contents: contents.into(),
            executable: false,
        }
    }

    /// An executable file, mode 0755.
    pub fn executable(contents: impl Into<Vec<u8>>) -> Spec {
        Spec::File {
            contents: contents.into(),
            executable: true,
        }
    }
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

/// sha256 of a file with the sha2 crate, as hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    sysext_assembler::hex(&Sha256::digest(fs::read(path).unwrap()))
}

/// sha256 of a file with coreutils' sha256sum, an implementation independent of the tool's.
pub fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Debian's unsquashfs with `args`, in UTC; its standard output.
pub fn unsquashfs(args: &[&dyn AsRef<OsStr>]) -> String {
    require_tool("unsquashfs");
    let output = Command::new("unsquashfs")
        .args(args.iter().map(|arg| arg.as_ref()))
        .env("TZ", "UTC")
        .output()
        .expect("run unsquashfs");
    assert!(
        output.status.success(),
        "unsquashfs failed: {}",
        stderr(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `unsquashfs -lln` of `image`, one line per entry.
pub fn unsquashfs_list(image: &Path) -> Vec<String> {
    unsquashfs(&[&"-lln", &image])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Extracts `image` into `dest` (which must not exist) with Debian's unsquashfs.
pub fn unsquashfs_extract(image: &Path, dest: &Path) {
    unsquashfs(&[&"-no-progress", &"-d", &dest, &image]);
}

/// Runs Debian's mksquashfs on `tree` with `options`, for images `build` would refuse.
pub fn mksquashfs(tree: &Path, image: &Path, options: &[&str]) {
    require_tool("mksquashfs");
    let status = Command::new("mksquashfs")
        .arg(tree)
        .arg(image)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(options)
        .stdout(Stdio::null())
        .status()
        .expect("run mksquashfs");
    assert!(status.success(), "mksquashfs failed");
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The architecture of the machine running the tests, in systemd's naming.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "arm64",
        other => panic!("no systemd architecture name known for {other}"),
    }
}

/// A small payload: an executable, a data file spanning blocks, a symlink, a unit file.
pub fn write_payload(root: &Path, hello: &str) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
    fs::write(
        root.join("usr/bin/hello"),
        format!("#!/bin/sh\necho {hello}\n"),
    )
    .unwrap();
    fs::set_permissions(
        root.join("usr/bin/hello"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("usr/bin/data"), data).unwrap();
    std::os::unix::fs::symlink("hello", root.join("usr/bin/hi")).unwrap();
    fs::write(
        root.join("usr/lib/systemd/system/hello.service"),
        "[Service]\nExecStart=/usr/bin/hello\n",
    )
    .unwrap();
}

/// Machine-code-like bytes on which a BCJ filter wins: calls (x86-64 `E8 rel32`, 5 bytes) or
/// branches with link (arm64 `BL imm26`, 4 bytes) to a handful of fixed targets. The relative
/// displacements differ at every position; the filter turns them into the few absolute targets.
pub fn branchy_code(arch: &str, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(0xbc1);
    let targets = [0x1000u32, 0x8000, 0x20000, 0x44000];
    let mut code = Vec::with_capacity(len + 8);
    while code.len() < len {
        let pc = code.len() as u32;
        let target = targets[rng.below(targets.len() as u64) as usize];
        match arch {
            "x86-64" => {
                code.push(0xe8);
                let rel = target.wrapping_sub(pc + 5);
                code.extend_from_slice(&rel.to_le_bytes());
            }
            "arm64" => {
                let imm = (target.wrapping_sub(pc) >> 2) & 0x03ff_ffff;
                code.extend_from_slice(&(0x9400_0000 | imm).to_le_bytes());
            }
            _ => panic!("no branchy code for {arch}"),
        }
    }
    code.truncate(len);
    code
}

/// The update URL of [`Build::hello`]'s feed.
pub const HELLO_URL: &str = "https://downloads.example.com/hello/";

/// One run of `sysext-assembler build`, the one way the tests build: extension `t`, version 1,
/// for x86-64, into the output directory given, with the payload and options a test adds.
/// [`Build::hello`] starts from the hello feed most tests of the other commands read instead.
#[derive(Clone, Debug)]
pub struct Build {
    name: String,
    version: String,
    arch: String,
    epoch: Option<u64>,
    out: PathBuf,
    options: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl Build {
    pub fn new(out: &Path) -> Build {
        Build {
            name: "t".into(),
            version: "1".into(),
            arch: "x86-64".into(),
            epoch: None,
            out: out.to_path_buf(),
            options: Vec::new(),
            env: Vec::new(),
        }
    }

    /// hello 1.0 for Flatcar from `payload` into `out`, with the reload flag, an update URL (so
    /// the transfer file is written too) and the epoch 1700000000.
    pub fn hello(payload: &Path, out: &Path) -> Build {
        Build::new(out)
            .name("hello")
            .version("1.0")
            .epoch(1_700_000_000)
            .tree(payload)
            .args([
                "--os",
                "flatcar",
                "--reload-manager",
                "--update-url",
                HELLO_URL,
            ])
    }

    pub fn name(mut self, name: &str) -> Build {
        self.name = name.into();
        self
    }

    pub fn version(mut self, version: &str) -> Build {
        self.version = version.into();
        self
    }

    /// `--arch` as given: systemd's name or one of the aliases `build` accepts.
    pub fn arch(mut self, arch: &str) -> Build {
        self.arch = arch.into();
        self
    }

    /// `--epoch`; without it `build` takes SOURCE_DATE_EPOCH, which [`command`] removes.
    pub fn epoch(mut self, epoch: u64) -> Build {
        self.epoch = Some(epoch);
        self
    }

    pub fn tree(self, dir: &Path) -> Build {
        self.args([OsStr::new("--tree"), dir.as_os_str()])
    }

    /// `--file DEST=SRC`.
    pub fn file(self, dest: &str, src: &Path) -> Build {
        self.args(["--file".to_string(), format!("{dest}={}", src.display())])
    }

    pub fn compression(self, compression: &str) -> Build {
        self.args(["--compression", compression])
    }

    /// `--format ddi`: a signed-ready disk image instead of a bare SquashFS.
    pub fn ddi(self) -> Build {
        self.args(["--format", "ddi"])
    }

    /// Any further arguments, as given.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Build {
        self.options
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Build {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The arguments after the program name, for a test that runs the build itself (under
    /// strace, in a shell with another umask).
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = ["build", "--name", &self.name]
            .into_iter()
            .chain(["--version", &self.version, "--arch", &self.arch, "--out"])
            .map(OsString::from)
            .collect();
        argv.push(self.out.clone().into_os_string());
        if let Some(epoch) = self.epoch {
            argv.extend(["--epoch".into(), epoch.to_string().into()]);
        }
        argv.extend(self.options.iter().cloned());
        argv
    }

    /// The build as a [`command`], for a test to spawn or add to.
    pub fn command(&self) -> Command {
        let mut cmd = command(&self.argv());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The build run by `sh -c` as `PREFIX "$0" "$@"`, for a test that sets what the process
    /// inherits: PREFIX `umask 077; exec`, say.
    pub fn in_shell(&self, prefix: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prefix} \"$0\" \"$@\""))
            .arg(BIN)
            .args(self.argv())
            .env_remove("SOURCE_DATE_EPOCH")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs the build and returns its output, whatever the exit status.
    pub fn output(&self) -> Output {
        self.command().output().expect("run sysext-assembler build")
    }

    /// Runs the build, which must succeed; returns what it wrote.
    pub fn run(&self) -> Built {
        expect_status(&self.output(), 0);
        self.outputs()
    }

    /// The paths this build writes (whether or not it has run).
    pub fn outputs(&self) -> Built {
        let arch = match self.arch.as_str() {
            "x86_64" | "amd64" => "x86-64",
            "aarch64" => "arm64",
            arch => arch,
        };
        let version = self.version.trim_start_matches('v');
        let stem = format!("{}-v{version}-{arch}", self.name);
        Built {
            dir: self.out.clone(),
            image: self.out.join(format!("{stem}.raw")),
            manifest: self.out.join(format!("{stem}.manifest.json")),
            sums: self.out.join("SHA256SUMS"),
            transfer: self.out.join(format!("{}.conf", self.name)),
        }
    }

    /// Asserts that the build is refused: exit 2 without a panic, nothing on stdout, every one of
    /// `needles` in the message, and the output directory holding exactly what it held before,
    /// byte for byte (no output, no temporary file, SHA256SUMS as it was). An output directory
    /// without files is first given a published feed ([`seed_output_dir`]), so that "unchanged"
    /// compares real files, not two empty listings. Returns the message.
    pub fn refused(&self, needles: &[&str]) -> String {
        if snapshot(&self.out).is_empty() {
            seed_output_dir(&self.out);
        }
        let before = snapshot(&self.out);
        let output = self.output();
        expect_error_naming(&output, needles);
        assert_eq!(stdout(&output), "", "a refused build printed to stdout");
        let after = snapshot(&self.out);
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "output directory listing changed: {}",
            stderr(&output)
        );
        assert!(
            after == before,
            "a file in the output directory changed: {}",
            stderr(&output)
        );
        stderr(&output)
    }
}

/// What a [`Build`] writes.
pub struct Built {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub manifest: PathBuf,
    pub sums: PathBuf,
    pub transfer: PathBuf,
}

/// The hello payload ([`write_payload`]) in TMP/payload, built with [`Build::hello`] into TMP/out.
pub fn built_image(tmp: &Path) -> Built {
    let payload = tmp.join("payload");
    write_payload(&payload, "hello");
    Build::hello(&payload, &tmp.join("out")).run()
}

/// A fresh temporary directory holding [`built_image`]: the feed most tests of the other
/// commands read. The directory lives as long as the returned handle.
pub fn hello_feed() -> (tempfile::TempDir, Built) {
    let tmp = tempdir();
    let built = built_image(tmp.path());
    (tmp, built)
}

/// Puts a published feed into `out` (another version of `t`: an image, its manifest, SHA256SUMS),
/// so that "the output directory is unchanged" compares real files, not two empty listings.
pub fn seed_output_dir(out: &Path) {
    let tree = out.with_extension("seed-tree");
    fs::create_dir_all(tree.join("usr/share/seed")).unwrap();
    fs::write(tree.join("usr/share/seed/file"), "published before\n").unwrap();
    Build::new(out).version("0").tree(&tree).run();
}

/// Every file of `dir` with its bytes, inode and mtime: what "changes nothing" compares.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(read) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    read.map(|entry| {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let bytes = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        (
            entry.file_name().to_string_lossy().into_owned(),
            (bytes, meta.ino(), meta.mtime(), meta.mtime_nsec()),
        )
    })
    .collect()
}

/// Parses YAML with PyYAML (python3-yaml), an independent parser, and returns it as JSON.
pub fn parse_yaml(text: &str) -> serde_json::Value {
    python_json(
        "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))",
        text,
        "PyYAML could not parse the document (is python3-yaml installed?)",
    )
}

/// Runs a Python SCRIPT that reads INPUT on stdin and prints JSON; the tests use Python's own
/// parsers and decoders as readers independent of the tool. Panics with WHAT and Python's stderr
/// when the script fails.
pub fn python_json(script: &str, input: &str, what: &str) -> serde_json::Value {
    require_tool("python3");
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{what}:\n{}\n---\n{input}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// gpg in batch mode with the keys in `home`; its standard output.
pub fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let mut command = Command::new("gpg");
    command.env("GNUPGHOME", home).args(["--batch", "--quiet"]);
    let output = command.args(args).output().expect("run gpg");
    expect_status(&output, 0);
    output.stdout
}

/// A GnuPG home under `dir` holding a throwaway signing key for feed@example.com.
pub fn throwaway_key(dir: &Path) -> PathBuf {
    require_tool("gpg");
    let home = dir.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    // No passphrase, so that the examples can sign in batch mode.
    gpg(
        &home,
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            "Feed <feed@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    home
}
