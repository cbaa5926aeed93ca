//! The documentation's examples, checked by the tools they are written for, so docs and tests
//! cannot drift. Every fenced code block in README.md, docs/*.md and tests/*/README.md is
//! marked `<!-- check: KIND -->` on the line before its fence, and a block without a known KIND fails
//! (`every_example_is_checked`), so no example escapes:
//!
//! - `keepalived-conf`: `keepalived -t` with the project's own static keepalived
//!   (`tests/e2e/build-keepalived x86_64`), for each control-plane node's variant, inside a
//!   network namespace that has the interface and address the config names;
//! - `track-script`: `sh -n`, then run against a local HTTPS server with a test CA;
//! - `butane`: parsed as YAML and regenerated with `sysext-assembler butane`, byte for byte;
//! - `butane-snippet`: parsed as YAML, holding the track script;
//! - `nftables`: `nft --check` in a fresh network namespace;
//! - `signing`: run with bash and gpg against a throwaway key;
//! - `assembler-build`: run with the tested binary in place of `cargo run --release --`;
//! - `assembler-run`: run next to real builds of the image (verify, inspect, diff);
//! - `feed-download`: run against a signed feed served on loopback in a network namespace;
//! - `usage`: docs/assembler.md's usage lines, equal to `--help`'s (see `help`);
//! - `shell`: `bash -n`, and the options and flake outputs it names must exist.
//!
//! Beyond the blocks: docs/assembler.md's options tables against `--help`, every
//! `sysext-assembler COMMAND --option` and `.#OUTPUT` in the text, and every relative link.
//!
//! Needs root (namespaces, overlay on /etc), keepalived's build dependencies, python3-yaml,
//! nftables, gnupg, openssl, curl, jq and nix-instantiate. Not run by plain `cargo test` (see
//! Cargo.toml): run `tests/docs/check`.

#[path = "../common/mod.rs"]
mod common;

mod help;
mod markdown;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use markdown::{block, blocks};

/// The project's keepalived, built (or taken from the cache) by the e2e helper.
fn keepalived() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/build-keepalived");
        assert!(script.is_file(), "{} is missing", script.display());
        let output = Command::new(&script)
            .arg("x86_64")
            .output()
            .expect("run build-keepalived");
        assert!(
            output.status.success(),
            "tests/e2e/build-keepalived x86_64 failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("build-keepalived printed nothing")
                .trim(),
        );
        assert!(
            path.is_file(),
            "build-keepalived printed {path:?}, not a file"
        );
        path
    })
}

/// Runs `script` with sh in new mount and network namespaces where /etc is an overlay (so the
/// test can create /etc/keepalived and /etc/kubernetes without touching the host) and loopback
/// is up. Returns the exit code and the combined output.
fn in_namespaces(script: &str) -> (i32, String) {
    require_tool("unshare");
    let tmp = tempfile::tempdir().unwrap();
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    let setup = format!(
        "set -e\nmount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc\nip link set lo up\nset +e\n",
        upper.display(),
        work.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "sh", "-c"])
        .arg(setup + script)
        .output()
        .expect("run unshare (needs root)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// The documented keepalived.conf for node `n` (1, 2 or 3), derived from cp-1's block by the
/// substitutions docs/operating.md's table lists.
fn node_config(cp1: &str, n: usize) -> String {
    let address = |i: usize| format!("192.0.2.1{i}");
    let peers: Vec<String> = (1..=3).filter(|i| *i != n).map(address).collect();
    let mut config = cp1
        .replace("router_id cp-1", &format!("router_id cp-{n}"))
        .replace("priority 100", &format!("priority {}", 101 - n))
        .replace(
            "unicast_src_ip 192.0.2.11",
            &format!("unicast_src_ip {}", address(n)),
        );
    let peer_block = "        192.0.2.12\n        192.0.2.13\n";
    assert!(
        config.contains(peer_block),
        "cp-1's unicast_peer block changed shape"
    );
    config = config.replace(
        peer_block,
        &format!("        {}\n        {}\n", peers[0], peers[1]),
    );
    config
}

/// Builds the image the docs name (keepalived 2.3.4, x86-64, for Flatcar) from TREE into OUT.
fn build_documented_image(out: &Path, tree: &Path, extra: &[&OsStr]) {
    let mut args: Vec<&OsStr> =
        "build --name keepalived --version 2.3.4 --arch x86-64 --os flatcar --reload-manager --out"
            .split(' ')
            .map(OsStr::new)
            .collect();
    args.extend([out.as_os_str(), "--tree".as_ref(), tree.as_os_str()]);
    args.extend_from_slice(extra);
    expect_status(&run(&args), 0);
}

/// `keepalived -t` on `config` in a namespace with eth0 = `address`/24 and the documented track
/// script installed where the config expects it.
fn keepalived_check(config: &str, address: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    fs::write(&conf, config).unwrap();
    let script = tmp.path().join("check-apiserver.sh");
    fs::write(&script, block("track-script") + "\n").unwrap();
    in_namespaces(&format!(
        "mkdir -p /etc/keepalived && install -m 0755 {script} /etc/keepalived/check-apiserver.sh\n\
         mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/keepalived-sysext && echo 0 > /var/lib/keepalived-sysext/handover\n\
         ip link add eth0 type veth peer name peer0 && ip addr add {address}/24 dev eth0 && ip link set eth0 up\n\
         {keepalived} --config-test --log-console --use-file={conf}",
        script = script.display(),
        keepalived = keepalived().display(),
        conf = conf.display(),
    ))
}

#[test]
fn keepalived_conf_examples_pass_keepalived_t() {
    let configs = blocks("keepalived-conf");
    assert!(
        !configs.is_empty(),
        "no keepalived-conf block in README.md or docs/"
    );
    for cp1 in &configs {
        for n in 1..=3 {
            let config = node_config(cp1, n);
            let (code, output) = keepalived_check(&config, &format!("192.0.2.1{n}"));
            assert_eq!(
                code, 0,
                "keepalived -t rejects the documented config for cp-{n}:\n{output}\n---\n{config}"
            );
        }
        // The check can fail: a password keepalived would truncate is rejected.
        let broken = cp1.replace("auth_pass Vip-2Sec", "auth_pass longer-than-eight");
        assert_ne!(
            broken, *cp1,
            "the auth_pass line changed; update this negative check"
        );
        let (code, output) = keepalived_check(&broken, "192.0.2.11");
        assert_ne!(code, 0, "keepalived -t accepted a broken config:\n{output}");
    }
}

#[test]
fn track_script_checks_the_local_apiserver() {
    require_tool("openssl");
    require_tool("curl");
    let script = block("track-script");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("check-apiserver.sh");
    fs::write(&path, script + "\n").unwrap();
    let status = Command::new("sh").arg("-n").arg(&path).status().unwrap();
    assert!(status.success(), "sh -n rejects the track script");

    // A test CA, a serving certificate for "kubernetes" signed by it, and one that is not.
    let d = tmp.path().display();
    let openssl = format!(
        "set -e; cd {d}\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2 2>/dev/null\n\
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=kube-apiserver 2>/dev/null\n\
         printf 'subjectAltName=DNS:kubernetes,IP:127.0.0.1\\n' > san.ext\n\
         openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile san.ext 2>/dev/null\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key -out rogue.crt -subj /CN=kubernetes -addext subjectAltName=DNS:kubernetes -days 2 2>/dev/null\n"
    );
    assert!(
        Command::new("sh")
            .args(["-c", &openssl])
            .status()
            .unwrap()
            .success(),
        "openssl failed"
    );
    fs::write(
        tmp.path().join("server.py"),
        "import http.server, ssl, sys\n\
         status = int(sys.argv[3])\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(status if self.path == '/livez' else 404)\n\
         \x20       self.end_headers()\n\
         \x20   def log_message(self, *a):\n\
         \x20       pass\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n\
         srv = http.server.HTTPServer(('127.0.0.1', 6443), H)\n\
         srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
         print('ready', flush=True)\n\
         srv.serve_forever()\n",
    )
    .unwrap();
    // Each case: server certificate, HTTP status (0 = no server), expected script result.
    let cases = [
        ("srv", 200, true),
        ("srv", 500, false),
        ("rogue", 200, false),
        ("", 0, false),
    ];
    for (cert, status, ok) in cases {
        let server = if cert.is_empty() {
            String::new()
        } else {
            format!(
                "python3 {d}/server.py {d}/{cert}.crt {d}/{cert}.key {status} > {d}/ready 2>&1 &\n\
                 server=$!\n\
                 for i in $(seq 50); do grep -q ready {d}/ready 2>/dev/null && break; sleep 0.1; done\n\
                 grep -q ready {d}/ready || {{ echo 'the test server never started'; exit 99; }}\n\
                 answer=$(curl -sk -o /dev/null -w '%{{http_code}}' https://127.0.0.1:6443/livez)\n\
                 [ \"$answer\" = {status} ] || {{ echo \"the test server answers $answer, not {status}\"; exit 99; }}\n"
            )
        };
        let (code, output) = in_namespaces(&format!(
            "server=\nmkdir -p /etc/kubernetes/pki && cp {d}/ca.crt /etc/kubernetes/pki/ca.crt\n{server}\
             sh {path}\nrc=$?\n[ -n \"$server\" ] && kill $server && wait $server\nexit $rc",
            path = path.display()
        ));
        // A negative case must fail because of the certificate or the status, not because no
        // server was there to ask (exit 99: the server is checked before the script runs).
        assert_ne!(code, 99, "certificate {cert:?}, status {status}: {output}");
        assert_eq!(
            code == 0,
            ok,
            "certificate {cert:?}, status {status}: exit {code}\n{output}"
        );
    }
}

#[test]
fn butane_example_is_what_the_tool_writes() {
    let example = block("butane");
    let doc = parse_yaml(&example);
    assert_eq!(doc["variant"], "flatcar");
    assert_eq!(doc["version"], "1.0.0");

    // Regenerate: an image named like the documented one, the documented keepalived.conf, any key.
    let tmp = tempfile::tempdir().unwrap();
    let payload = tmp.path().join("payload");
    fs::create_dir_all(payload.join("usr/bin")).unwrap();
    fs::write(payload.join("usr/bin/keepalived"), "stand-in binary\n").unwrap();
    let out = tmp.path().join("out");
    build_documented_image(&out, &payload, &[]);
    let config = tmp.path().join("cp-1.keepalived.conf");
    fs::write(&config, block("keepalived-conf") + "\n").unwrap();
    let key = tmp.path().join("feed.gpg");
    fs::write(&key, [0x99, 0x00, 0x01, b'k']).unwrap();
    let output = run(&[
        "butane".as_ref(),
        "--manifest".as_ref(),
        out.join("keepalived-v2.3.4-x86-64.manifest.json")
            .as_os_str(),
        "--update-url".as_ref(),
        "https://downloads.example.com/keepalived/".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--signing-key".as_ref(),
        key.as_os_str(),
    ]);
    expect_status(&output, 0);
    let generated = markdown::shorten_butane(&stdout(&output));
    assert_eq!(
        generated.trim_end(),
        example,
        "the documented Butane example differs from the tool's output"
    );

    // Its keepalived.conf is the documented one, which the keepalived test checks.
    let conf = doc["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/keepalived/keepalived.conf")
        .expect("keepalived.conf in the Butane example");
    assert_eq!(conf["mode"], 0o600);
    assert_eq!(
        conf["contents"]["inline"].as_str().unwrap(),
        block("keepalived-conf") + "\n"
    );
}

#[test]
fn butane_snippet_holds_the_track_script() {
    let doc = parse_yaml(&(block("butane-snippet") + "\n"));
    let file = &doc["storage"]["files"][0];
    assert_eq!(file["path"], "/etc/keepalived/check-apiserver.sh");
    assert_eq!(file["mode"], 0o755);
    assert_eq!(
        file["contents"]["inline"].as_str().unwrap(),
        block("track-script") + "\n"
    );
}

#[test]
fn nftables_example_loads() {
    require_tool("nft");
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("vrrp.nft");
    fs::write(&rules, block("nftables") + "\n").unwrap();
    let (code, output) = in_namespaces(&format!("nft --check --file {}", rules.display()));
    assert_eq!(code, 0, "nft rejects the documented rules:\n{output}");
    fs::write(
        &rules,
        block("nftables").replace("accept\n", "acept\n") + "\n",
    )
    .unwrap();
    let (code, _) = in_namespaces(&format!("nft --check --file {}", rules.display()));
    assert_ne!(code, 0, "nft --check accepted broken rules");
}

#[test]
fn signing_commands_work_and_detect_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let home = throwaway_key(tmp.path());
    fs::write(
        tmp.path().join("SHA256SUMS"),
        format!("{}  keepalived-v2.3.4-x86-64.raw\n", "a".repeat(64)),
    )
    .unwrap();
    let commands = block("signing");
    let run_block = |script: &str| {
        Command::new("bash")
            .args(["-euc", script])
            .current_dir(tmp.path())
            .env("GNUPGHOME", &home)
            .output()
            .unwrap()
    };
    let output = run_block(&commands);
    assert!(
        output.status.success(),
        "the documented signing commands failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tmp.path().join("SHA256SUMS.gpg").is_file() && tmp.path().join("feed.gpg").is_file());

    // The verification line must fail once SHA256SUMS is changed.
    let verify_line = commands.lines().last().unwrap().to_string();
    assert!(verify_line.contains("--verify"), "{verify_line}");
    fs::write(
        tmp.path().join("SHA256SUMS"),
        format!("{}  keepalived-v2.3.4-x86-64.raw\n", "b".repeat(64)),
    )
    .unwrap();
    let output = run_block(&verify_line);
    assert!(!output.status.success(), "a tampered SHA256SUMS verified");
}

/// The KINDs a block may be marked with; each has a test above or below that reads its blocks.
const KINDS: [&str; 11] = [
    "keepalived-conf",
    "track-script",
    "butane",
    "butane-snippet",
    "nftables",
    "signing",
    "assembler-build",
    "assembler-run",
    "feed-download",
    "usage",
    "shell",
];

/// Why a document's blocks would escape their checks: unmarked blocks, unknown KINDs, markers
/// without a block.
fn unchecked_blocks(text: &str) -> Vec<String> {
    match markdown::fenced_blocks(text) {
        Err(e) => vec![e],
        Ok(found) => found
            .iter()
            .filter_map(|b| match &b.kind {
                None => Some(format!(
                    "line {}: a ```{} block without a <!-- check: KIND --> line before it (KINDs: {})",
                    b.line,
                    b.info,
                    KINDS.join(", ")
                )),
                Some(kind) if !KINDS.contains(&kind.as_str()) => Some(format!(
                    "line {}: unknown check KIND {kind:?} (KINDs: {})",
                    b.line,
                    KINDS.join(", ")
                )),
                Some(_) => None,
            })
            .collect(),
    }
}

#[test]
fn every_example_is_checked() {
    let mut problems = Vec::new();
    let mut count = 0;
    for doc in markdown::documents() {
        count += markdown::fenced_blocks(&doc.text).map_or(0, |b| b.len());
        for problem in unchecked_blocks(&doc.text) {
            problems.push(format!("{}: {problem}", doc.path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(count >= 20, "only {count} code blocks found");
    // The check can fail: an unmarked block, an unknown KIND, a marker without a block.
    assert_eq!(unchecked_blocks("text\n```bash\nls\n```\n").len(), 1);
    assert_eq!(
        unchecked_blocks("<!-- check: bogus -->\n```\nx\n```\n").len(),
        1
    );
    assert_eq!(unchecked_blocks("<!-- check: shell -->\ntext\n").len(), 1);
    assert!(unchecked_blocks("<!-- check: shell -->\n```bash\nls\n```\n").is_empty());
}

/// The packages the flake defines for x86_64-linux, named without nixpkgs by tests/nix's
/// evaluation of flake.nix (the same one `tests/nix/check outputs` uses).
fn flake_packages() -> std::collections::BTreeSet<String> {
    require_tool("nix-instantiate");
    let output = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "tests/nix/outputs.nix"])
        .current_dir(markdown::repo())
        .output()
        .expect("run nix-instantiate");
    assert!(
        output.status.success(),
        "evaluating the flake's outputs failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value["outputs"]["packages"]["x86_64-linux"]
        .as_array()
        .expect("packages.x86_64-linux")
        .iter()
        .map(|name| name.as_str().unwrap().to_string())
        .collect()
}

/// Each `.#NAME` in `text` that is not a package; a NAME with capitals is a placeholder
/// (`.#NAME`, `.#keepalived-X_Y_Z-ARCH`): every real output is lower case.
fn unknown_outputs(text: &str, packages: &std::collections::BTreeSet<String>) -> Vec<String> {
    text.match_indices(".#")
        .map(|(at, _)| {
            text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect::<String>()
        })
        .filter(|name| !name.is_empty() && !name.chars().any(|c| c.is_ascii_uppercase()))
        .filter(|name| !packages.contains(name))
        .collect()
}

#[test]
fn flake_outputs_named_in_the_docs_exist() {
    let packages = flake_packages();
    let mut checked = 0;
    for doc in markdown::documents() {
        let unknown = unknown_outputs(&doc.text, &packages);
        assert!(
            unknown.is_empty(),
            "{} names flake outputs that do not exist: {unknown:?} (packages: {packages:?})",
            doc.path.display()
        );
        checked += doc.text.matches(".#").count();
    }
    assert!(checked >= 10, "only {checked} flake outputs named");
    assert_eq!(
        unknown_outputs("nix build .#keepalived-x86_64", &packages),
        ["keepalived-x86_64"]
    );
}

#[test]
fn shell_examples_parse() {
    let shells = blocks("shell");
    assert!(shells.len() >= 5, "only {} shell blocks", shells.len());
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("block.sh");
    let parses = |text: &str| {
        fs::write(&script, text).unwrap();
        let output = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for text in &shells {
        let (ok, stderr) = parses(text);
        assert!(ok, "bash -n rejects a shell block:\n{stderr}\n---\n{text}");
    }
    assert!(
        !parses("for f in a b; do echo $f\n").0,
        "bash -n accepted a broken loop"
    );
}

#[test]
fn development_build_example_runs() {
    let examples = blocks("assembler-build");
    assert!(!examples.is_empty(), "no assembler-build block");
    let keepalived_ready = keepalived(); // build (or find cached) before the block asks for it
    assert!(keepalived_ready.is_file());
    for example in &examples {
        assert!(
            example.contains("cargo run --release -- build"),
            "an assembler-build block that does not start the assembler with cargo run:\n{example}"
        );
        let script = example.replace("cargo run --release --", BIN);
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["files", "tests", "nix"] {
            std::os::unix::fs::symlink(markdown::repo().join(dir), tmp.path().join(dir)).unwrap();
        }
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the development build example failed:\n{}\n---\n{example}",
            String::from_utf8_lossy(&output.stderr)
        );
        let image = tmp.path().join("out/keepalived-v2.3.4-x86-64.raw");
        let verified = run(&[OsStr::new("verify"), image.as_os_str()]);
        expect_status(&verified, 0);
        let listing = stdout(&run(&[OsStr::new("inspect"), image.as_os_str()]));
        assert!(
            listing.contains("usr/bin/keepalived"),
            "the example's image lacks keepalived:\n{listing}"
        );
    }
}

/// A directory where the `assembler-run` blocks find what they name: an image of `files/` and
/// the project's keepalived with its manifest and SHA256SUMS, copies of them in build-a/ and
/// build-b/, and the tested sysext-assembler first on PATH.
struct Images {
    tmp: tempfile::TempDir,
    work: PathBuf,
    path: String,
}

impl Images {
    fn new() -> Images {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let bin = tmp.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("sysext-assembler")).unwrap();
        let file = format!("usr/bin/keepalived={}", keepalived().display());
        let files = markdown::repo().join("files");
        build_documented_image(&work, &files, &["--file".as_ref(), file.as_ref()]);
        for copy in ["build-a", "build-b"] {
            fs::create_dir_all(work.join(copy)).unwrap();
            for name in [
                "keepalived-v2.3.4-x86-64.raw",
                "keepalived-v2.3.4-x86-64.manifest.json",
                "SHA256SUMS",
            ] {
                fs::copy(work.join(name), work.join(copy).join(name)).unwrap();
            }
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Images { tmp, work, path }
    }

    fn image(&self) -> PathBuf {
        self.work.join("keepalived-v2.3.4-x86-64.raw")
    }

    /// Runs `script` with bash in the directory, in a private mount namespace whose /opt is a
    /// tmpfs holding the image at /opt/extensions/keepalived/. Returns the exit code and output.
    fn run(&self, script: &str) -> (i32, String) {
        require_tool("unshare");
        let file = self.tmp.path().join("block.sh");
        fs::write(&file, script).unwrap();
        let output = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "set -e\nmount -t tmpfs tmpfs /opt\n\
                 install -D -m 0644 {image} /opt/extensions/keepalived/keepalived-v2.3.4-x86-64.raw\n\
                 cd {work}\nexec bash -euo pipefail {file}",
                image = self.image().display(),
                work = self.work.display(),
                file = file.display(),
            ))
            .env("PATH", &self.path)
            .output()
            .expect("run unshare (needs root)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), text)
    }
}

#[test]
fn verify_inspect_diff_examples_run() {
    require_tool("jq");
    let examples = blocks("assembler-run");
    for command in ["verify", "inspect", "diff"] {
        assert!(
            examples
                .iter()
                .any(|e| e.starts_with(&format!("sysext-assembler {command} "))),
            "no assembler-run block for {command}"
        );
    }
    let images = Images::new();
    for example in &examples {
        let (code, output) = images.run(example);
        assert_eq!(
            code, 0,
            "a documented command failed:\n{output}\n---\n{example}"
        );
    }
    // The examples can fail: verify must reject a changed image, diff must see the change.
    let mut bytes = fs::read(images.image()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(images.image(), bytes).unwrap();
    fs::copy(
        images.image(),
        images.work.join("build-b/keepalived-v2.3.4-x86-64.raw"),
    )
    .unwrap();
    for example in examples
        .iter()
        .filter(|e| !e.starts_with("sysext-assembler inspect "))
    {
        let (code, output) = images.run(example);
        assert_ne!(
            code, 0,
            "a changed image went unnoticed:\n{output}\n---\n{example}"
        );
    }
}

#[test]
fn download_check_example_runs_against_a_signed_feed() {
    require_tool("curl");
    require_tool("sha256sum");
    let example = block("feed-download");
    let documented_base = "base=https://downloads.example.com/keepalived\n";
    assert!(
        example.starts_with(documented_base),
        "the download example no longer starts with {documented_base:?}"
    );
    let script = example.replacen(documented_base, "base=http://127.0.0.1:8080\n", 1);
    // The feed: a real image with its manifest and SHA256SUMS, signed by a throwaway key whose
    // public half the admin holds as ./feed.gpg.
    let images = Images::new();
    let feed = &images.work;
    let tmp = tempfile::tempdir().unwrap();
    let home = throwaway_key(tmp.path());
    let sums = feed.join("SHA256SUMS");
    let signature = feed.join("SHA256SUMS.gpg");
    gpg(
        &home,
        &[
            "--detach-sign",
            "--output",
            path_str(&signature),
            path_str(&sums),
        ],
    );
    let admin = tmp.path().join("admin");
    fs::create_dir_all(&admin).unwrap();
    fs::write(
        admin.join("feed.gpg"),
        gpg(&home, &["--export", "feed@example.com"]),
    )
    .unwrap();
    fs::write(tmp.path().join("block.sh"), &script).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let run_example = || {
        for name in fs::read_dir(&admin).unwrap() {
            let name = name.unwrap().path();
            if name.file_name().unwrap() != "feed.gpg" {
                fs::remove_file(name).unwrap();
            }
        }
        // The server must answer before the example runs, so that a failure is the example's.
        in_namespaces(&format!(
            "export GNUPGHOME={home} PATH={bin}:{path}\n\
             python3 -m http.server --bind 127.0.0.1 --directory {feed} 8080 >/dev/null 2>&1 &\n\
             server=$!\n\
             for i in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:8080/SHA256SUMS && break; sleep 0.1; done\n\
             curl -sf -o /dev/null http://127.0.0.1:8080/SHA256SUMS || {{ echo 'the feed server never answered'; exit 99; }}\n\
             cd {admin} && bash -euo pipefail {block}\nrc=$?\nkill $server; wait $server\nexit $rc",
            home = home.display(),
            bin = Path::new(BIN).parent().unwrap().display(),
            feed = feed.display(),
            admin = admin.display(),
            block = tmp.path().join("block.sh").display(),
        ))
    };
    let (code, output) = run_example();
    assert_eq!(
        code, 0,
        "the documented download check failed:\n{output}\n---\n{script}"
    );
    assert!(admin.join("keepalived-v2.3.4-x86-64.raw").is_file());

    // It can fail: a changed image, then a SHA256SUMS that is not the signed one.
    let original = fs::read(images.image()).unwrap();
    let mut changed = original.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0xff;
    fs::write(images.image(), &changed).unwrap();
    let (code, output) = run_example();
    assert!(
        code != 0 && code != 99 && output.contains("FAILED"),
        "a changed image passed sha256sum --check (exit {code}):\n{output}"
    );
    fs::write(images.image(), &original).unwrap();
    let mut text = fs::read_to_string(&sums).unwrap();
    text.push_str(&format!("{}  other.raw\n", "0".repeat(64)));
    fs::write(&sums, text).unwrap();
    let (code, output) = run_example();
    assert!(
        code != 0 && code != 99 && output.contains("BAD signature"),
        "a SHA256SUMS without a valid signature passed gpg --verify (exit {code}):\n{output}"
    );
}

/// The real `--help` of the tool and of every command it lists.
fn helps() -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let top = run(&["--help"]);
    expect_status(&top, 0);
    let commands = help::commands(&stdout(&top));
    assert!(commands.len() >= 5, "commands: {commands:?}");
    let helps = commands
        .iter()
        .map(|command| {
            let output = run(&[command.as_str(), "--help"]);
            expect_status(&output, 0);
            (command.clone(), stdout(&output))
        })
        .collect();
    (commands, helps)
}

#[test]
fn assembler_reference_agrees_with_help() {
    let path = markdown::repo().join("docs/assembler.md");
    let doc = fs::read_to_string(&path).unwrap();
    let (commands, helps) = helps();
    let problems = help::problems(&doc, &commands, &helps);
    assert!(
        problems.is_empty(),
        "docs/assembler.md disagrees with sysext-assembler --help:\n{}",
        problems.join("\n")
    );
    let documented: usize = help::parse_doc(&doc)
        .values()
        .map(|s| s.options.len())
        .sum();
    assert!(documented >= 20, "only {documented} options documented");

    // The comparison can fail: each change below must be reported, naming what changed.
    let changed = |from: &str, to: &str, needle: &str| {
        assert!(
            doc.contains(from),
            "{from:?} is no longer in docs/assembler.md"
        );
        let broken = doc.replacen(from, to, 1);
        let found = help::problems(&broken, &commands, &helps);
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "replacing {from:?} by {to:?} went unnoticed: {found:?}"
        );
    };
    let xz_row = doc
        .lines()
        .find(|l| l.starts_with("| `--xz-filter"))
        .expect("the --xz-filter row")
        .to_string()
        + "\n";
    changed(&xz_row, "", "--xz-filter");
    changed("| `--out <DIR>` |", "| `--out <DIRECTORY>` |", "--out");
    changed("| `--json` |", "| `--jsn` |", "--jsn");
    changed(
        "| `--reload-manager` |",
        "| `--reload-manager` |\n| `--frobnicate` | x |\n| `--reload-manager` |",
        "--frobnicate",
    );
    changed("default `_any`", "default `any`", "--os");
    changed(
        "`x86-64` or `arm64` (systemd's names)",
        "`x86-64` (systemd's name)",
        "accepts \"arm64\"",
    );
    changed(
        "sysext-assembler verify [OPTIONS] <IMAGE>",
        "sysext-assembler verify [OPTIONS] <FILE>",
        "verify: the doc's usage",
    );
    changed(
        "## sysext-assembler diff",
        "## sysext-assembler compare",
        "compare",
    );
}

#[test]
fn sysext_assembler_invocations_use_real_options() {
    // Every `sysext-assembler COMMAND ...` line of README.md and docs/ (continuation lines
    // joined, code blocks and prose alike) may only use options that COMMAND's --help lists.
    let (_, helps) = helps();
    let mut checked = 0;
    for doc in markdown::documents() {
        let joined = doc.text.replace("\\\n", " ");
        for line in joined.lines() {
            let Some(at) = line.find("sysext-assembler ") else {
                continue;
            };
            let words: Vec<&str> = line[at..].split_whitespace().collect();
            let Some(help) = words.get(1).and_then(|command| helps.get(*command)) else {
                continue;
            };
            // Whole option names, so that `--sum` does not pass because `--sums` exists.
            let listed: std::collections::BTreeSet<&str> = help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|word| word.starts_with("--"))
                .collect();
            for word in &words[2..] {
                if let Some(option) = word.strip_prefix("--") {
                    let option = option
                        .split('=')
                        .next()
                        .unwrap()
                        .trim_end_matches(['`', ')', ',']);
                    assert!(
                        listed.contains(format!("--{option}").as_str()),
                        "{} uses `sysext-assembler {} --{option}`, which --help does not list:\n{line}",
                        doc.path.display(),
                        words[1]
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} invocations found");
}

#[test]
fn relative_links_resolve() {
    let root = markdown::repo();
    let mut problems = Vec::new();
    let mut count = 0;
    for doc in markdown::documents() {
        count += markdown::links(&doc.text).len();
        problems.extend(markdown::link_problems(&root, &doc.path, &doc.text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(count >= 40, "only {count} links found");
    // The check can fail: a missing file, a missing heading, a path out of the repository.
    let path = Path::new("docs/example.md");
    for broken in [
        "[a](missing.md)",
        "[a](operating.md#no-such-heading)",
        "[a](#nowhere)",
        "[a](../../outside.md)",
    ] {
        let text = format!("# Example\n\n{broken}\n");
        assert_eq!(
            markdown::link_problems(&root, path, &text).len(),
            1,
            "{broken} was not reported"
        );
    }
    let good = "# Example\n\n[a](operating.md#security) [b](#example) [c](../BENCHMARKS.md)\n";
    assert!(markdown::link_problems(&root, path, good).is_empty());
}
