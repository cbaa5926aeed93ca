//! The README's examples, checked by the tools they are written for, so docs and tests cannot
//! drift: each checked block is marked `<!-- check: KIND -->` on the line before its code fence,
//! and these tests read the blocks from README.md itself.
//!
//! - `keepalived-conf`: `keepalived -t` with the project's own static keepalived
//!   (`tests/e2e/build-keepalived x86_64`), for each control-plane node's variant, inside a
//!   network namespace that has the interface and address the config names;
//! - `track-script`: `sh -n`, then run against a local HTTPS server with a test CA;
//! - `butane`: parsed as YAML and regenerated with `sysext-assembler butane`, byte for byte;
//! - `butane-snippet`: parsed as YAML, holding the track script;
//! - `nftables`: `nft --check` in a fresh network namespace;
//! - `signing`: run with bash and gpg against a throwaway key.
//!
//! Needs root (namespaces, overlay on /etc), keepalived's build dependencies, python3-yaml,
//! nftables, gnupg, openssl and curl. Not run by plain `cargo test` (see Cargo.toml): run
//! `tests/docs/check`.

#[path = "../common/mod.rs"]
mod common;

mod readme;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use readme::{block, blocks};

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

/// The README's keepalived.conf for node `n` (1, 2 or 3), derived from cp-1's block by the
/// substitutions the README's table lists.
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

/// `keepalived -t` on `config` in a namespace with eth0 = `address`/24 and the README's track
/// script installed where the config expects it.
fn keepalived_check(config: &str, address: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    fs::write(&conf, config).unwrap();
    let script = tmp.path().join("check-apiserver.sh");
    fs::write(&script, block("track-script") + "\n").unwrap();
    in_namespaces(&format!(
        "mkdir -p /etc/keepalived && install -m 0755 {script} /etc/keepalived/check-apiserver.sh\n\
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
    assert!(!configs.is_empty(), "no keepalived-conf block in README.md");
    for cp1 in &configs {
        for n in 1..=3 {
            let config = node_config(cp1, n);
            let (code, output) = keepalived_check(&config, &format!("192.0.2.1{n}"));
            assert_eq!(
                code, 0,
                "keepalived -t rejects the README's config for cp-{n}:\n{output}\n---\n{config}"
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

    // Regenerate: an image named like the README's, the README's keepalived.conf, any key.
    let tmp = tempfile::tempdir().unwrap();
    let payload = tmp.path().join("payload");
    fs::create_dir_all(payload.join("usr/bin")).unwrap();
    fs::write(payload.join("usr/bin/keepalived"), "stand-in binary\n").unwrap();
    let out = tmp.path().join("out");
    let output = run(&[
        "build".as_ref(),
        "--name".as_ref(),
        "keepalived".as_ref(),
        "--version".as_ref(),
        "2.3.4".as_ref(),
        "--arch".as_ref(),
        "x86-64".as_ref(),
        "--os".as_ref(),
        "flatcar".as_ref(),
        "--reload-manager".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tree".as_ref(),
        payload.as_os_str(),
    ]);
    expect_status(&output, 0);
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
    let generated = readme::shorten_butane(&stdout(&output));
    assert_eq!(
        generated.trim_end(),
        example,
        "README's Butane example differs from the tool's output"
    );

    // Its keepalived.conf is the README's, which the keepalived test checks.
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
    assert_eq!(code, 0, "nft rejects the README's rules:\n{output}");
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
    require_tool("gpg");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gen = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args([
            "--batch",
            "--quiet",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Feed <feed@example.com>",
            "ed25519",
            "sign",
            "never",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
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
        "README's signing commands failed:\n{}",
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

#[test]
fn sysext_assembler_invocations_use_real_options() {
    // Every `sysext-assembler COMMAND ...` line in the README's code blocks (continuation lines
    // joined) may only use options that COMMAND's --help lists.
    let text = readme::readme();
    let joined = text.replace("\\\n", " ");
    let mut checked = 0;
    for line in joined.lines() {
        let Some(at) = line.find("sysext-assembler ") else {
            continue;
        };
        let words: Vec<&str> = line[at..].split_whitespace().collect();
        let Some(command) = words.get(1) else {
            continue;
        };
        if !["build", "verify", "inspect", "diff", "butane"].contains(command) {
            continue;
        }
        let help = stdout(&run(&[*command, "--help"]));
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
                    "README uses `sysext-assembler {command} --{option}`, which --help does not list:\n{line}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} invocations found");
}
