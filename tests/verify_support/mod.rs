//! Helpers for the tests of `verify`, `inspect`, `diff`, `butane` and the hardened reader:
//! running the real binary, building real images with `build` (or Debian's mksquashfs where a
//! test needs an image `build` refuses to write), and parsing YAML with an independent parser.

#![allow(dead_code)] // each test crate uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_sysext-assembler");

/// Runs `sysext-assembler` with `args`.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run sysext-assembler")
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

/// Fails with a clear message when a required tool is missing: tests never skip silently.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; this test needs it (see the README's test section)"
    );
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

/// What `build` wrote.
pub struct Built {
    pub dir: PathBuf,
    pub image: PathBuf,
    pub manifest: PathBuf,
    pub sums: PathBuf,
    pub transfer: PathBuf,
}

/// Builds `hello` VERSION for x86-64 from `payload` into `out` with the given extra options.
pub fn build(payload: &Path, out: &Path, version: &str, extra: &[&str]) -> Built {
    let mut args: Vec<String> = [
        "build",
        "--name",
        "hello",
        "--version",
        version,
        "--arch",
        "x86-64",
        "--os",
        "flatcar",
        "--reload-manager",
        "--update-url",
        "https://downloads.example.com/hello/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--out".into());
    args.push(out.display().to_string());
    args.push("--tree".into());
    args.push(payload.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let output = run(&args);
    expect_status(&output, 0);
    let stem = format!("hello-v{}-x86-64", version.trim_start_matches('v'));
    Built {
        dir: out.to_path_buf(),
        image: out.join(format!("{stem}.raw")),
        manifest: out.join(format!("{stem}.manifest.json")),
        sums: out.join("SHA256SUMS"),
        transfer: out.join("hello.conf"),
    }
}

/// A fresh payload + build of hello 1.0 in a temporary directory.
pub fn built_image(tmp: &Path) -> Built {
    let payload = tmp.join("payload");
    write_payload(&payload, "hello");
    build(
        &payload,
        &tmp.join("out"),
        "1.0",
        &["--epoch", "1700000000"],
    )
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

/// Parses YAML with PyYAML (python3-yaml), an independent parser, and returns it as JSON.
pub fn parse_yaml(text: &str) -> serde_json::Value {
    require_tool("python3");
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
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
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "PyYAML could not parse the document (is python3-yaml installed?):\n{}\n---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
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
