//! A feed stays consistent whenever a build dies: killed with SIGKILL before each rename and each
//! fsync (strace injects the signal at the Nth call) and at random moments of a large build, the
//! output directory holds only complete files under their final names (each byte-identical to
//! what a finished build writes, or left as it was published), every SHA256SUMS line matches a
//! complete file, and the next build removes the temporary files and completes the feed. Builds
//! racing for one name or for different names lose no line and tear no file.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
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

/// The build under test: `t` 1 from `payload` into `out`, with a transfer file and a fixed epoch.
fn feed_build(out: &Path, payload: &Path) -> Build {
    Build::new(out)
        .tree(payload)
        .epoch(7)
        .args(["--update-url", "https://feed.invalid/t/"])
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
    feed_build(out, payload).run();
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

/// A seeded feed to copy before each attempt, and what a finished build of the payload
/// `lay_out_payload` writes turns it into.
fn setup(lay_out_payload: impl Fn(&Path)) -> Setup {
    let tmp = tempdir();
    let payload = tmp.path().join("payload");
    lay_out_payload(&payload);
    let template = tmp.path().join("template");
    seed_output_dir(&template);
    let seed = files(&template);
    let finished_dir = tmp.path().join("finished");
    copy_dir(&template, &finished_dir);
    feed_build(&finished_dir, &payload).run();
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

fn killed(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    // strace reports the tracee's death by signal as its own exit status 128 + 9.
    output.status.signal() == Some(9) || output.status.code() == Some(137)
}

#[test]
fn a_build_killed_before_any_rename_or_fsync_leaves_a_consistent_feed() {
    require_tool("strace");
    // strace picks the kill point by call count, so a small payload covers the same points as a
    // large one, in a fraction of the time.
    let setup = setup(|payload| write_payload(payload, "hello"));
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
            strace
                .arg(BIN)
                .args(feed_build(&out, &setup.payload).argv());
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
    let setup = setup(large_payload);
    // How long a whole build takes here, to spread the kills over all of it: the fastest of three, since
    // on a loaded machine one timing can be several times the next build's, and kills spread over a
    // slow build's time then come after faster builds have finished.
    let duration = (0..3)
        .map(|n| {
            let out = setup.template.with_file_name(format!("timed-{n}"));
            copy_dir(&setup.template, &out);
            let started = Instant::now();
            feed_build(&out, &setup.payload).run();
            started.elapsed()
        })
        .min()
        .unwrap();
    let mut rng = Rng::new(0x4b111);
    // A loaded machine can still make every build of a run faster than the three timed ones (the Nix
    // sandbox's check phase saw 3 of 12 interrupted): a build that finished before its kill shortens
    // the span the next delays are drawn from, and the loop goes on until enough kills landed.
    let mut span = duration;
    let (mut interrupted, mut finished) = (0, 0);
    while interrupted < 6 || interrupted + finished < 12 {
        let attempt = interrupted + finished;
        assert!(
            attempt < 48,
            "only {interrupted} of {attempt} builds were interrupted ({finished} finished, kills drawn \
             from the first {span:?} of a {duration:?} build): the kills came too late"
        );
        let out = setup.template.with_file_name(format!("random-{attempt}"));
        copy_dir(&setup.template, &out);
        let delay = span.mul_f64(rng.below(1100) as f64 / 1000.0);
        let mut child = feed_build(&out, &setup.payload)
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails only if it already exited
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
            span = span.mul_f64(0.75);
        } else {
            interrupted += 1;
        }
        let when = format!("killed after {delay:?} of a {duration:?} build");
        assert_consistent(&out, &setup.seed, &setup.finished, &when);
        assert_recovers(&out, &setup.payload, &setup.finished, &when);
        fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn builds_racing_for_one_name_publish_one_complete_image() {
    let setup = setup(large_payload);
    let other = setup.template.with_file_name("other-payload");
    large_payload(&other);
    fs::write(other.join("usr/share/t/other"), "different bytes").unwrap();
    for round in 0..2 {
        let out = setup.template.with_file_name(format!("race-{round}"));
        copy_dir(&setup.template, &out);
        // Two builds of the same bytes, one of other bytes, for the same name at once.
        let spawn = |payload: &Path| {
            feed_build(&out, payload)
                .command()
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
                expect_error_naming(
                    output,
                    &[
                        "refusing to publish different bytes as t-v1-x86-64.raw",
                        "--replace-published",
                    ],
                );
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

/// Runs `sysext-assembler` with `argv` under strace with `fault` (`error=EIO` or `signal=KILL`)
/// injected at the `nth` rename; returns the output.
fn with_fault_at_rename(argv: &[OsString], fault: &str, nth: usize) -> Output {
    let syscalls = "rename,renameat,renameat2";
    let mut strace = Command::new("strace");
    strace.args(["-f", "-qq", "-o", "/dev/null", "-e"]);
    strace.arg(format!("trace={syscalls}"));
    for s in syscalls.split(',') {
        strace.args(["-e", &format!("inject={s}:{fault}:when={nth}")]);
    }
    strace.arg(BIN).args(argv).output().unwrap()
}

/// While a published name is replaced (image, manifest, then SHA256SUMS), every file under a
/// final name is complete: as published before or as the finished command writes it (a
/// SHA256SUMS line may still name the old bytes, which makes a download fail its check, never
/// succeed with unchecked bytes).
fn assert_old_or_new(out: &Path, seed: &Files, finished: &Files, when: &str) {
    for (name, bytes) in files(out) {
        if name.starts_with('.') {
            continue;
        }
        assert!(
            seed.get(&name) == Some(&bytes) || finished.get(&name) == Some(&bytes),
            "{when}: {name} is neither the old nor the new file"
        );
    }
}

/// Faults at every rename of a command that replaces published names (`sysext-assembler` with
/// `argv` run in a copy of
/// `template`, `finished` what it writes when nothing fails): each interrupted run leaves only
/// complete files, and running the same command again completes the replacement.
fn fault_every_rename(
    template: &Path,
    argv: impl Fn(&Path) -> Vec<OsString>,
    seed: &Files,
    finished: &Files,
) {
    let mut faults = 0;
    for fault in ["error=EIO", "signal=KILL"] {
        for nth in 1.. {
            let out = template.with_file_name(format!("fault-{faults}"));
            copy_dir(template, &out);
            let output = with_fault_at_rename(&argv(&out), fault, nth);
            let when = format!("{fault} at rename {nth}");
            if output.status.success() {
                assert!(nth > 3, "{when}: fewer than 3 renames");
                assert_eq!(&files(&out), finished, "{when}: a finished run");
                fs::remove_dir_all(&out).unwrap();
                break;
            }
            if fault == "error=EIO" {
                expect_error_naming(
                    &output,
                    &[
                        &format!("cannot rename the temporary file to {}/", out.display()),
                        "Input/output error",
                    ],
                );
            } else {
                assert!(killed(&output), "{when}: {}", stderr(&output));
            }
            faults += 1;
            assert_old_or_new(&out, seed, finished, &when);
            let again = run(&argv(&out));
            expect_status(&again, 0);
            let now: Files = files(&out)
                .into_iter()
                .filter(|(name, _)| !name.starts_with('.'))
                .collect();
            assert_eq!(&now, finished, "{when}: the next run did not complete it");
            fs::remove_dir_all(&out).unwrap();
        }
    }
    assert!(faults >= 6, "only {faults} faults injected");
}

/// `sign` replaces an unsigned image, its manifest and its SHA256SUMS line: interrupted at any
/// of the three renames, by an I/O error or SIGKILL, the next `sign` with the same key finishes
/// the job (it used to say "already signed, nothing to do" and leave SHA256SUMS naming the
/// unsigned bytes).
#[test]
fn a_sign_interrupted_at_any_rename_is_completed_by_the_next_sign() {
    require_tool("strace");
    require_tool("openssl");
    let tmp = tempdir();
    let key = tmp.path().join("release.key");
    let cert = tmp.path().join("release.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        ])
        .args(["-subj", "/CN=release", "-keyout", path_str(&key), "-out"])
        .arg(&cert)
        .output()
        .unwrap();
    expect_status(&made, 0);
    let payload = tmp.path().join("payload");
    write_payload(&payload, "hello");
    let template = tmp.path().join("template");
    seed_output_dir(&template);
    feed_build(&template, &payload).ddi().run();
    let seed = files(&template);
    let argv = |out: &Path| -> Vec<OsString> {
        let image = out.join("t-v1-x86-64.raw");
        let args: [&OsStr; 6] = [
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_ref(),
            "--cert".as_ref(),
            cert.as_ref(),
            image.as_ref(),
        ];
        args.map(OsStr::to_os_string).into()
    };
    let finished_dir = tmp.path().join("finished");
    copy_dir(&template, &finished_dir);
    expect_status(&run(&argv(&finished_dir)), 0);
    let finished = files(&finished_dir);
    assert_ne!(seed["SHA256SUMS"], finished["SHA256SUMS"]);
    fault_every_rename(&template, argv, &seed, &finished);
}

/// `build --replace-published` over a published version: interrupted at any rename, the same
/// command run again completes the replacement.
#[test]
fn a_replacing_build_interrupted_at_any_rename_is_completed_by_the_next_build() {
    require_tool("strace");
    let setup = setup(|payload| write_payload(payload, "hello"));
    let other = setup.template.with_file_name("other-payload");
    write_payload(&other, "other");
    let template = setup.template.with_file_name("published");
    copy_dir(&setup.template, &template);
    feed_build(&template, &setup.payload).run();
    let seed = files(&template);
    let argv = |out: &Path| feed_build(out, &other).args(["--replace-published"]).argv();
    let finished_dir = template.with_file_name("replaced");
    copy_dir(&template, &finished_dir);
    expect_status(&run(&argv(&finished_dir)), 0);
    let finished = files(&finished_dir);
    assert_ne!(seed["t-v1-x86-64.raw"], finished["t-v1-x86-64.raw"]);
    fault_every_rename(&template, argv, &seed, &finished);
}
