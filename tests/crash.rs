//! A feed stays consistent whenever a build dies: killed with SIGKILL before each rename and each
//! fsync (strace injects the signal at the Nth call) and at random moments of a large build, the
//! output directory holds only complete files under their final names (each byte-identical to
//! what a finished build writes, or left as it was published), every SHA256SUMS line matches a
//! complete file, and the next build removes the temporary files and completes the feed. Builds
//! racing for one name or for different names lose no line and tear no file.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use common::*;

/// Outputs of a build of `t` 1 from `payload`, as a finished build writes them.
type Files = BTreeMap<String, Vec<u8>>;

fn files(dir: &Path) -> Files {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

const BUILD_ARGS: [&str; 4] = ["--update-url", "https://feed.invalid/t/", "--epoch", "7"];

fn build_args(payload: &Path) -> Vec<&str> {
    let mut args = vec!["--tree", path_str(payload)];
    args.extend_from_slice(&BUILD_ARGS);
    args
}

/// A payload large enough that a build takes a while (6 MiB in 6 files, half incompressible).
fn large_payload(root: &Path) {
    let mut rng = Rng::new(0xc7a5);
    for i in 0..3 {
        let dir = root.join(format!("usr/share/t/{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("random"), rng.bytes(1 << 20)).unwrap();
        fs::write(dir.join("text"), rng.text(1 << 20)).unwrap();
    }
}

/// The invariant a feed must keep at every instant, given what was published before the build
/// (`seed`) and what the finished build writes (`finished`).
fn assert_consistent(out: &Path, seed: &Files, finished: &Files, when: &str) {
    let now = files(out);
    for (name, bytes) in &now {
        if name.starts_with('.') {
            continue; // a temporary file, never under a final name
        }
        let expected_old = seed.get(name);
        let expected_new = finished.get(name);
        assert!(
            Some(bytes) == expected_old || Some(bytes) == expected_new,
            "{when}: {name} is neither as published before nor as a finished build writes it \
             ({} bytes)",
            bytes.len()
        );
    }
    let sums = now.get("SHA256SUMS").expect("SHA256SUMS is always there");
    for line in String::from_utf8_lossy(sums).lines() {
        let (hash, name) = (&line[..64], &line[66..]);
        let file = now
            .get(name)
            .unwrap_or_else(|| panic!("{when}: SHA256SUMS lists {name}, which is not there"));
        assert_eq!(
            sysext_assembler::hex(&<sha2::Sha256 as sha2::Digest>::digest(file)),
            hash,
            "{when}: SHA256SUMS line for {name} does not match the file"
        );
    }
}

/// The next build completes the feed and leaves no temporary file.
fn assert_recovers(out: &Path, payload: &Path, finished: &Files, when: &str) {
    let output = build_t(out, &build_args(payload));
    expect_status(&output, 0);
    let now = files(out);
    let stray: Vec<_> = now.keys().filter(|name| name.starts_with('.')).collect();
    assert!(stray.is_empty(), "{when}: the next build left {stray:?}");
    for (name, bytes) in finished {
        assert!(
            now.get(name) == Some(bytes),
            "{when}: after the next build {name} differs from a finished build's"
        );
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    payload: std::path::PathBuf,
    template: std::path::PathBuf,
    seed: Files,
    finished: Files,
}

/// A seeded feed to copy before each attempt, and what a finished build turns it into.
fn setup() -> Setup {
    let tmp = tempdir();
    let payload = tmp.path().join("payload");
    large_payload(&payload);
    let template = tmp.path().join("template");
    seed_output_dir(&template);
    let seed = files(&template);
    let finished_dir = tmp.path().join("finished");
    copy_dir(&template, &finished_dir);
    expect_status(&build_t(&finished_dir, &build_args(&payload)), 0);
    let finished = files(&finished_dir);
    Setup {
        _tmp: tmp,
        payload,
        template,
        seed,
        finished,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        fs::write(to.join(name), bytes).unwrap();
    }
}

/// The command line of the build under test: `sysext-assembler` and [`build_t`]'s arguments.
fn build_command_line(out: &Path, payload: &Path) -> Vec<String> {
    std::iter::once(BIN)
        .chain(build_t_args(out, &build_args(payload)))
        .map(str::to_string)
        .collect()
}

fn killed(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    // strace reports the tracee's death by signal as its own exit status 128 + 9.
    output.status.signal() == Some(9) || output.status.code() == Some(137)
}

#[test]
fn a_build_killed_before_any_rename_or_fsync_leaves_a_consistent_feed() {
    require_tool("strace");
    let setup = setup();
    let mut kills = 0;
    for syscalls in ["rename,renameat,renameat2", "fsync,fdatasync"] {
        for nth in 1.. {
            let out = setup.template.with_file_name(format!("out-{kills}"));
            copy_dir(&setup.template, &out);
            let injection = syscalls
                .split(',')
                .map(|s| format!("-e inject={s}:signal=KILL:when={nth}"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut strace = Command::new("strace");
            strace.args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                &format!("trace={syscalls}"),
            ]);
            strace.args(injection.split(' '));
            strace.args(build_command_line(&out, &setup.payload));
            let output = strace.output().unwrap();
            let when = format!("killed at {syscalls} call {nth}");
            if !killed(&output) {
                expect_status(&output, 0); // fewer calls than nth: the build finished
                assert_consistent(&out, &setup.seed, &setup.finished, "after a finished build");
                assert!(
                    nth > 2,
                    "{syscalls}: the build made fewer than 2 such calls"
                );
                break;
            }
            kills += 1;
            assert_consistent(&out, &setup.seed, &setup.finished, &when);
            assert_recovers(&out, &setup.payload, &setup.finished, &when);
            fs::remove_dir_all(&out).unwrap();
        }
    }
    // image, manifest, transfer file, SHA256SUMS: four renames and four fsyncs at least.
    assert!(kills >= 8, "only {kills} kill points");
}

#[test]
fn a_build_killed_at_random_moments_leaves_a_consistent_feed() {
    let setup = setup();
    // How long a whole build takes here, to spread the kills over all of it.
    let out = setup.template.with_file_name("timed");
    copy_dir(&setup.template, &out);
    let started = Instant::now();
    expect_status(&build_t(&out, &build_args(&setup.payload)), 0);
    let duration = started.elapsed();
    let mut rng = Rng::new(0x4b111);
    let (mut interrupted, mut finished) = (0, 0);
    for attempt in 0..12 {
        let out = setup.template.with_file_name(format!("random-{attempt}"));
        copy_dir(&setup.template, &out);
        let delay = duration.mul_f64(rng.below(1100) as f64 / 1000.0);
        let argv = build_command_line(&out, &setup.payload);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails only if it already exited
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        } else {
            interrupted += 1;
        }
        let when = format!("killed after {delay:?} of a {duration:?} build");
        assert_consistent(&out, &setup.seed, &setup.finished, &when);
        assert_recovers(&out, &setup.payload, &setup.finished, &when);
        fs::remove_dir_all(&out).unwrap();
    }
    assert!(
        interrupted >= 6,
        "only {interrupted} of 12 builds were interrupted ({finished} finished): the kills came too late"
    );
}

#[test]
fn builds_racing_for_one_name_publish_one_complete_image() {
    let setup = setup();
    let other = setup.template.with_file_name("other-payload");
    large_payload(&other);
    fs::write(other.join("usr/share/t/other"), "different bytes").unwrap();
    for round in 0..2 {
        let out = setup.template.with_file_name(format!("race-{round}"));
        copy_dir(&setup.template, &out);
        // Two builds of the same bytes, one of other bytes, for the same name at once.
        let spawn = |payload: &Path| {
            let argv = build_command_line(&out, payload);
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let children = [spawn(&setup.payload), spawn(&other), spawn(&setup.payload)];
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect();
        // Whichever bytes came first are published; a build of the other bytes is refused as a
        // republication, a build of the same bytes succeeds and changes nothing.
        let published = files(&out);
        let image = &published["t-v1-x86-64.raw"];
        let first_is_ours = *image == setup.finished["t-v1-x86-64.raw"];
        for (index, output) in outputs.iter().enumerate() {
            let ours = index != 1;
            if ours == first_is_ours {
                expect_status(output, 0);
            } else {
                expect_error_naming(output, "refusing to publish different bytes");
            }
        }
        if first_is_ours {
            assert_consistent(&out, &setup.seed, &setup.finished, "after the race");
        }
        let sums = String::from_utf8_lossy(&published["SHA256SUMS"]).into_owned();
        assert_eq!(sums.lines().count(), 2, "{sums}"); // the seed's line and this one
        for line in sums.lines() {
            assert_eq!(
                sysext_assembler::hex(&<sha2::Sha256 as sha2::Digest>::digest(
                    &published[&line[66..]]
                )),
                &line[..64],
                "torn or stale: {line}"
            );
        }
        assert!(published.keys().all(|name| !name.starts_with('.')));
    }
}
