//! `sysext-assembler butane`: the output is parsed as YAML by an independent parser (PyYAML)
//! and every field is checked; the transfer file is byte-identical to what `build` writes; text
//! of any shape survives the YAML round trip; bad input is refused. With `--ignition` the JSON is
//! the Butane config transpiled: same paths, modes, links and units, and every `data:` URL,
//! decoded by Python's urllib (an independent implementation), holds exactly the Butane's text.
//! ignition-validate and the real Ignition read it in tests/system (not here: the cargo tests
//! also run in Nix's sandbox, which has no Ignition).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

const URL: &str = HELLO_URL;

fn butane(manifest: &Path, url: &str, extra: &[&OsStr]) -> (Value, String) {
    let output = run_butane(&[], manifest, url, extra);
    (parse_yaml(&stdout(&output)), stderr(&output))
}

/// `butane --ignition` for MANIFEST and URL, then `extra`: the parsed JSON and stderr.
fn ignition(manifest: &Path, url: &str, extra: &[&OsStr]) -> (Value, String) {
    let output = run_butane(&["--ignition".as_ref()], manifest, url, extra);
    let doc = serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(&output)));
    (doc, stderr(&output))
}

/// `butane FLAGS --manifest MANIFEST --update-url URL EXTRA`, whatever its exit status.
fn butane_output(flags: &[&OsStr], manifest: &Path, url: &str, extra: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec!["butane".as_ref()];
    all.extend_from_slice(flags);
    all.extend([
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--update-url".as_ref(),
        url.as_ref(),
    ]);
    all.extend_from_slice(extra);
    run(&all)
}

/// [`butane_output`], which must succeed.
fn run_butane(flags: &[&OsStr], manifest: &Path, url: &str, extra: &[&OsStr]) -> Output {
    let output = butane_output(flags, manifest, url, extra);
    expect_status(&output, 0);
    output
}

/// Asserts that `butane`, with and without `--ignition`, refuses MANIFEST, URL and `extra`:
/// exit 2, every one of `needles` in the message, and no config (nor half of one) on stdout.
fn assert_refused(manifest: &Path, url: &str, extra: &[&OsStr], needles: &[&str]) {
    for flags in [&[][..], &["--ignition".as_ref()]] {
        let output = butane_output(flags, manifest, url, extra);
        expect_error_naming(&output, needles);
        assert!(
            stdout(&output).is_empty(),
            "half a config printed ({flags:?}): {}",
            stdout(&output)
        );
    }
}

/// Decodes `data:` URLs with Python's urllib (its DataHandler), independent of the tool's
/// encoder.
fn decode_data_urls(urls: &[String]) -> Vec<Vec<u8>> {
    let script = "import base64, json, sys, urllib.request\n\
                  urls = json.load(sys.stdin)\n\
                  print(json.dumps([base64.b64encode(urllib.request.urlopen(u).read()).decode() \
                  for u in urls]))";
    let encoded: Vec<String> = serde_json::from_value(python_json(
        script,
        &serde_json::to_string(urls).unwrap(),
        "urllib could not decode the data URLs",
    ))
    .unwrap();
    encoded.iter().map(|b| base64_decode(b)).collect()
}

/// Standard base64 decoding, for what Python hands back.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(value(c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

fn file<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no file {path} in {doc:#}"))
}

/// A throwaway signing key's public half, exported (binary) from a GnuPG home under `dir`.
fn make_key(dir: &Path) -> Vec<u8> {
    gpg(&throwaway_key(dir), &["--export", "feed@example.com"])
}

#[test]
fn every_field_of_the_config() {
    let (tmp, built) = hello_feed();
    let config = "global_defs {\n    router_id CP_1\n    enable_script_security\n}\n\n# a \"quoted\" comment: with \\ and ü\n";
    let config_path = tmp.path().join("keepalived.conf");
    fs::write(&config_path, config).unwrap();
    let key = make_key(tmp.path());
    let key_path = tmp.path().join("feed.gpg");
    fs::write(&key_path, &key).unwrap();

    let (doc, err) = butane(
        &built.manifest,
        URL,
        &[
            "--config".as_ref(),
            config_path.as_os_str(),
            "--signing-key".as_ref(),
            key_path.as_os_str(),
        ],
    );
    assert!(err.is_empty(), "{err}");
    assert_eq!(doc["variant"], "flatcar");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(
        doc["storage"]["directories"],
        json!([{"path": "/opt/extensions/hello", "mode": 0o755}])
    );

    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(&built.manifest).unwrap()).unwrap();
    let image = file(&doc, "/opt/extensions/hello/hello-v1.0-x86-64.raw");
    assert_eq!(image["mode"], 0o644);
    assert_eq!(
        image["contents"]["source"],
        "https://downloads.example.com/hello/hello-v1.0-x86-64.raw"
    );
    let sha512 = manifest["image"]["sha512"].as_str().unwrap();
    assert_eq!(
        image["contents"]["verification"]["hash"],
        format!("sha512-{sha512}")
    );
    // And that sha512 is really the image's (independent implementation).
    let out = Command::new("sha512sum")
        .arg(&built.image)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(sha512));

    let transfer = file(&doc, "/etc/sysupdate.hello.d/hello.conf");
    assert_eq!(transfer["mode"], 0o644);
    assert_eq!(
        transfer["contents"]["inline"].as_str().unwrap(),
        fs::read_to_string(&built.transfer).unwrap()
    );

    let noop = file(&doc, "/etc/sysupdate.d/noop.conf");
    assert_eq!(
        noop["contents"]["inline"],
        "[Source]\nType=regular-file\nPath=/\nMatchPattern=invalid@v.raw\n[Target]\nType=regular-file\nPath=/\n"
    );

    let conf = file(&doc, "/etc/keepalived/keepalived.conf");
    assert_eq!(conf["mode"], 0o600);
    assert_eq!(conf["contents"]["inline"], config);

    let pubring = file(&doc, "/etc/systemd/import-pubring.gpg");
    assert_eq!(pubring["mode"], 0o644);
    let source = pubring["contents"]["source"].as_str().unwrap();
    let encoded = source.strip_prefix("data:;base64,").unwrap();
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(encoded.as_bytes())
                .unwrap();
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        decoded.stdout, key,
        "the key does not survive the data: URL"
    );

    assert_eq!(doc["storage"]["files"].as_array().unwrap().len(), 5);
    assert_eq!(
        doc["storage"]["links"],
        json!([{"path": "/etc/extensions/hello.raw", "target": "/opt/extensions/hello/hello-v1.0-x86-64.raw", "hard": false}])
    );

    let units = doc["systemd"]["units"].as_array().unwrap();
    assert_eq!(units.len(), 3);
    assert_eq!(
        units[0],
        json!({"name": "systemd-sysupdate.timer", "enabled": true})
    );
    // systemd 262 renamed the timer; presets (Ignition's `enabled`) only match the real name.
    assert_eq!(
        units[1],
        json!({"name": "systemd-sysupdate-update.timer", "enabled": true})
    );
    assert_eq!(units[2]["name"], "systemd-sysupdate.service");
    let dropins = units[2]["dropins"].as_array().unwrap();
    assert_eq!(dropins.len(), 1);
    assert_eq!(dropins[0]["name"], "hello.conf");
    let dropin: Vec<&str> = dropins[0]["contents"].as_str().unwrap().lines().collect();
    assert_eq!(dropin[0], "[Service]");
    assert!(
        dropin.contains(&"ExecStartPre=/usr/lib/systemd/systemd-sysupdate -C hello update"),
        "{dropin:?}"
    );
    assert!(
        dropin
            .iter()
            .any(|l| l.starts_with("ExecStartPost=") && l.contains("touch /run/reboot-required")),
        "{dropin:?}"
    );
    assert_eq!(dropin.len(), 5, "{dropin:?}");
}

/// Two throwaway self-signed RSA certificates (`openssl req -x509 -newkey rsa:2048`; the private
/// keys were discarded), so these tests need no openssl. Their SHA-256 fingerprints (of the DER)
/// come from `openssl x509 -outform DER | sha256sum`; the tests recompute them with coreutils.
const CERT_A: &str = "-----BEGIN CERTIFICATE-----\n\
MIIDIjCCAgqgAwIBAgIBATANBgkqhkiG9w0BAQsFADApMScwJQYDVQQDDB5rZWVw\n\
YWxpdmVkLXN5c2V4dCB0ZXN0IHNpZ25pbmcwIBcNMjYxMTI5MjI0NzU3WhgPMjEy\n\
NjExMDUyMjQ3NTdaMCkxJzAlBgNVBAMMHmtlZXBhbGl2ZWQtc3lzZXh0IHRlc3Qg\n\
c2lnbmluZzCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAKzrguEz09gA\n\
kRXU/qryYrMoYDwjC1wVeNVKpKcKrCsjgwnSm6jbCQ9esmDDuO2DoVqiDbX0gRVK\n\
GEMCdwM/K3zumVITZPV7qlUqknbEMG68KZVJnPXHPspKLBZRGydJxUmhX62DX1j4\n\
C5RIo7wzL1g7SlpaJTl0fwo7/9bL4EqvMk90IwBatAZn3BXnbdtNWXCUv/UwdoDB\n\
vrPQMkzAkifYoH3lupGKV5T59p5SyqpswpRJOVfZjvsKI0kDo41APwkIxDO8jpPA\n\
ycmvk/Eocq/s8MKNvLEBWiZ67yBqpnvB8aTbHdgV2xiyDiLaWEKXpYLcbmjcpFTb\n\
oM8nvBNJ4NMCAwEAAaNTMFEwHQYDVR0OBBYEFCMYPyq0fO+I74SkS+H4mkXyY/5h\n\
MB8GA1UdIwQYMBaAFCMYPyq0fO+I74SkS+H4mkXyY/5hMA8GA1UdEwEB/wQFMAMB\n\
Af8wDQYJKoZIhvcNAQELBQADggEBAGucKmxWviF5Ewu5glPkFkhuf8/dZvS13iCn\n\
BlTRutifTOBnDqYwz9VwmbccXxPIkHYX2OoqdjXt99oVZBRqXdgagEjZTjrvgN3D\n\
nVz3cKJbF/lLZN+maPbv2cVEA9qqMQuA/nJrDdkf/5zZx2QNAfOu9gVn+Glgw1Y/\n\
JvXBw56VTyVYtLez2bgBk0J6BA2m7VJjAkuzrVZQfn/7HpqJn0N+5pRz7UCZkFq7\n\
HGy7o/srAQgC9li/iMWrabOSWtJPI0tP9go7nVhdnK4FTjDkbK8z0C8c7ZdcpcT0\n\
HpVHXn+kevUALqaPdIc5tHc5LSax0YpX4MUYPz09n2nibNAy6Os=\n\
-----END CERTIFICATE-----\n\
";
const CERT_B: &str = "-----BEGIN CERTIFICATE-----\n\
MIIDFDCCAfygAwIBAgIBAjANBgkqhkiG9w0BAQsFADAiMSAwHgYDVQQDDBdzZWNv\n\
bmQgdGVzdCBzaWduaW5nIGtleTAgFw0yNjExMjkyMjQ5MDFaGA8yMTI2MTEwNTIy\n\
NDkwMVowIjEgMB4GA1UEAwwXc2Vjb25kIHRlc3Qgc2lnbmluZyBrZXkwggEiMA0G\n\
CSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDC8pmdlMOO65KT+H0FVWY+aUisCxBP\n\
3FYq11YhZ/NimJ4AdLo19PNHCJoXTvdOVHOwG87uc9GkuEi5HuUQngolyHd6fy8D\n\
XiFwYCOemlrfMXQ7HvJH+5elZtHZOPY0rAtbPqsfO6cFp2sUBoT95dAx6feliI2B\n\
xoEUZOAERuYAWJUz2zsJwXIps/YixJ7P7Y9Xkd5XV9eLXGhkKOqx7mXeMHO6i0uB\n\
9w0FXbn6+Tet3FikWwsV1LoHcFZ6pJXcMSlHzvyZ/OVXJu6qPgUsFAs6M1W0Xl55\n\
YiWKyWUMAof7VACcG4gRNjttu5L9sF63bdsc8NmosHH6otnbth4QnMZPAgMBAAGj\n\
UzBRMB0GA1UdDgQWBBQOHtTi5Xai+lsU5MeyTdnh/llAOzAfBgNVHSMEGDAWgBQO\n\
HtTi5Xai+lsU5MeyTdnh/llAOzAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEB\n\
CwUAA4IBAQA76qbnMs7f+z1oHgKnJVqo8gAopt/al+N31I4ycnyI6viFsN7Ay5p1\n\
GiwvKh63urbPsj6D/IWIpfZFnuLXuT2ClDL6ChyDiFANef3NaQ0mGsXF53nQdY3X\n\
LA+0kq0Gh3lbDoiyFsT6XWY2+tntN+U19AS2wOXPuRkBEBlaUlpDQir5NKPmwzhX\n\
qoAX0rv2UuByYqwFQU1wyKvTD0Hb7AN/DuNL8U8iJxT7iuFbe3/FSjT9Z9P1ePqg\n\
TsG4ed1jnBcAut2Y42uqUIM4Lmp/z41R1/sWFGCAyJzqpKpCNCwAEvvn+WHNO1L4\n\
1raDKB84vS6umQw1Z0MIbeLahEaIoxr0\n\
-----END CERTIFICATE-----\n\
";

/// The SHA-256 of a PEM certificate's DER, by coreutils' base64 and sha256sum.
/// A copy of `manifest` as `build --format ddi` (`fingerprint` None) or `sign` (the signing
/// certificate's fingerprint) would write it: what butane reads of a DDI.
fn manifest_as(dir: &Path, manifest: &Path, fingerprint: Option<&str>) -> PathBuf {
    let mut value: Value = serde_json::from_str(&fs::read_to_string(manifest).unwrap()).unwrap();
    value["ddi"] = json!({"root_hash": "ab".repeat(32), "salt": "cd".repeat(32)});
    if let Some(fingerprint) = fingerprint {
        value["ddi"]["certificate_fingerprint"] = fingerprint.into();
    }
    let path = dir.join(format!(
        "ddi-{}.manifest.json",
        fingerprint.unwrap_or("unsigned")
    ));
    fs::write(&path, value.to_string()).unwrap();
    path
}

/// Trust settings that contradict the image are refused with what to do: the node would refuse
/// its own keepalived (and, the policy holding for every extension, merge nothing), or the
/// certificates would check nothing.
#[test]
fn trust_settings_contradicting_the_manifest_are_refused() {
    let (tmp, built) = hello_feed();
    let cert_a = tmp.path().join("a.pem");
    fs::write(&cert_a, CERT_A).unwrap();
    let signed_by_b = manifest_as(tmp.path(), &built.manifest, Some(&der_sha256(CERT_B)));
    let signed_by_a = manifest_as(tmp.path(), &built.manifest, Some(&der_sha256(CERT_A)));
    let unsigned = manifest_as(tmp.path(), &built.manifest, None);
    let with_cert = |policy: Option<&'static str>| {
        let mut args: Vec<&OsStr> = vec!["--verity-certificate".as_ref(), cert_a.as_os_str()];
        if let Some(policy) = policy {
            args.extend::<[&OsStr; 2]>(["--image-policy".as_ref(), policy.as_ref()]);
        }
        args
    };
    let drop_it = "or drop --verity-certificate";
    for (manifest, policy, needles) in [
        (
            &unsigned,
            None,
            [
                &format!("{} describes an unsigned DDI", unsigned.display()),
                "sign it (sysext-assembler sign --key KEY --cert CERT IMAGE)",
                drop_it,
            ],
        ),
        (
            &signed_by_b,
            None,
            [
                &format!(
                    "says the image is signed by certificate {}, which is none of the --verity-certificate files",
                    der_sha256(CERT_B)
                ),
                "Give the certificate of the key that signed it",
                "the node would refuse it",
            ],
        ),
        (
            &built.manifest,
            None,
            [
                &format!("{} describes a bare SquashFS image", built.manifest.display()),
                "Build the image with --format ddi, sign it",
                drop_it,
            ],
        ),
        (
            &signed_by_a,
            Some("*"),
            [
                "--image-policy '*' lets every image through",
                "give one that demands signatures",
                drop_it,
            ],
        ),
    ] {
        assert_refused(manifest, URL, &with_cert(policy), &needles);
    }
    // Controls: the signed manifest with its certificate, and the bare image under a policy
    // that lets an unprotected root through.
    run_butane(&[], &signed_by_a, URL, &with_cert(None));
    run_butane(
        &[],
        &built.manifest,
        URL,
        &with_cert(Some(
            "root=signed+unprotected+absent:usr=signed+unprotected+absent",
        )),
    );
}

fn der_sha256(pem: &str) -> String {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    let out = Command::new("sh")
        .args(["-c", "base64 -d | sha256sum"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The systemd-sysext.service drop-in `butane` writes for `policy`: upstream's commands (systemd
/// 257's units/systemd-sysext.service) with the policy added.
fn policy_dropin(policy: &str) -> String {
    let refresh = format!("systemd-sysext refresh --image-policy={policy}");
    [
        "# The image policy applies to every extension systemd-sysext.service merges.",
        "[Service]",
        "ExecStart=",
        &format!("ExecStart={refresh}"),
        "ExecReload=",
        &format!("ExecReload={refresh}"),
    ]
    .map(|line| format!("{line}\n"))
    .concat()
}

#[test]
fn verity_certificates_and_the_image_policy() {
    let (tmp, built) = hello_feed();
    assert_eq!(
        der_sha256(CERT_A),
        "17bcb29461d7bc1be206ee7a0faf9925e6cfed9a18747cd268435431db9a1d26"
    );
    // What `openssl x509 -text` writes: a dump before the PEM block, which systemd skips too.
    let a = tmp.path().join("a.pem");
    fs::write(&a, format!("Certificate:\n    Data: ...\n{CERT_A}")).unwrap();
    let b = tmp.path().join("b.crt");
    // CRLF line ends and no final newline: the installed copy is the canonical PEM anyway.
    fs::write(&b, CERT_B.trim_end().replace('\n', "\r\n")).unwrap();
    let path_of = |pem: &str| format!("/etc/verity.d/hello-{}.crt", &der_sha256(pem)[..16]);

    for (args, certs, policy) in [
        (
            vec![&a],
            vec![CERT_A],
            "root=signed+absent:usr=signed+absent",
        ),
        (
            vec![&a, &b],
            vec![CERT_A, CERT_B],
            "root=signed+absent:usr=signed+absent",
        ),
        (
            vec![&b],
            vec![CERT_B],
            "root=verity+signed:usr=signed:=absent",
        ),
    ] {
        let mut extra: Vec<&OsStr> = Vec::new();
        for path in &args {
            extra.extend(["--verity-certificate".as_ref(), path.as_os_str()]);
        }
        if !policy.starts_with("root=signed+absent") {
            extra.extend::<[&OsStr; 2]>(["--image-policy".as_ref(), policy.as_ref()]);
        }
        // The image is signed by the first certificate's key (the others trusted as well).
        let signed = manifest_as(tmp.path(), &built.manifest, Some(&der_sha256(certs[0])));
        let (bu, err) = butane(&signed, URL, &extra);
        let (ign, _) = ignition(&signed, URL, &extra);
        assert!(
            err.contains("every extension on the node"),
            "the policy's reach is not said: {err}"
        );
        let files = bu["storage"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 4 + certs.len());
        // systemd 259 and later read the policy from sysext.conf.d for every run of systemd-sysext.
        let conf = file(&bu, "/etc/systemd/sysext.conf.d/image-policy.conf");
        assert_eq!(conf["mode"], 0o644);
        assert_eq!(
            conf["contents"]["inline"],
            format!("[SysExt]\nImagePolicy={policy}\n")
        );
        for pem in &certs {
            let f = file(&bu, &path_of(pem));
            assert_eq!(f["mode"], 0o644);
            assert_eq!(f["contents"]["inline"], *pem);
            let i = file(&ign, &path_of(pem));
            assert_eq!(i["mode"], 0o644);
            let url = i["contents"]["source"].as_str().unwrap().to_string();
            assert_eq!(decode_data_urls(&[url])[0], pem.as_bytes());
        }
        let units = bu["systemd"]["units"].as_array().unwrap();
        assert_eq!(units.len(), 4);
        assert_eq!(
            units[3],
            json!({"name": "systemd-sysext.service",
                   "dropins": [{"name": "image-policy.conf", "contents": policy_dropin(policy)}]})
        );
        assert_eq!(ign["systemd"], bu["systemd"]);
    }
}

/// Both outputs for the same inputs: (Butane YAML parsed, Ignition JSON parsed, key bytes,
/// keepalived.conf text, the image's path).
fn both_outputs(tmp: &Path, with_extras: bool) -> (Value, Value, Vec<u8>, String, PathBuf) {
    let built = built_image(tmp);
    let config = "global_defs {\n    router_id CP_1 # \"q\" 100% ?x=1&y #frag\n}\n\n# ü \\ \t\n";
    let config_path = tmp.join("keepalived.conf");
    fs::write(&config_path, config).unwrap();
    let key = make_key(tmp);
    let key_path = tmp.join("feed.gpg");
    fs::write(&key_path, &key).unwrap();
    let extras: [&OsStr; 4] = [
        "--config".as_ref(),
        config_path.as_os_str(),
        "--signing-key".as_ref(),
        key_path.as_os_str(),
    ];
    let args: &[&OsStr] = if with_extras { &extras } else { &[] };
    let (bu, _) = butane(&built.manifest, URL, args);
    let (ign, err) = ignition(&built.manifest, URL, args);
    if with_extras {
        assert!(err.is_empty(), "{err}");
    } else {
        assert!(err.contains("no --signing-key"), "{err}");
    }
    (bu, ign, key, config.to_string(), built.image)
}

#[test]
fn the_ignition_config_is_the_butane_config_transpiled() {
    for with_extras in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let (bu, ign, key, config, image) = both_outputs(tmp.path(), with_extras);

        // Structure: spec 3.3.0 (what flatcar 1.0.0 transpiles to) and nothing else at the top.
        assert_eq!(bu["version"], "1.0.0");
        assert_eq!(keys(&ign), ["ignition", "storage", "systemd"]);
        assert_eq!(ign["ignition"], json!({"version": "3.3.0"}));
        assert_eq!(keys(&ign["storage"]), ["directories", "files", "links"]);

        // Directories, links and units carry over as they are.
        assert_eq!(ign["storage"]["directories"], bu["storage"]["directories"]);
        assert_eq!(ign["storage"]["links"], bu["storage"]["links"]);
        assert_eq!(ign["systemd"], bu["systemd"]);

        // Files: same paths in the same order, same modes; Butane's inline text becomes a data:
        // URL that decodes to exactly that text, everything else is copied.
        let bu_files = bu["storage"]["files"].as_array().unwrap();
        let ign_files = ign["storage"]["files"].as_array().unwrap();
        assert_eq!(ign_files.len(), bu_files.len());
        assert_eq!(ign_files.len(), if with_extras { 5 } else { 3 });
        let mut urls = Vec::new();
        let mut texts = Vec::new();
        for (i, b) in ign_files.iter().zip(bu_files) {
            assert_eq!(keys(i), ["contents", "mode", "path"], "{i}");
            assert_eq!(i["path"], b["path"]);
            assert_eq!(i["mode"], b["mode"], "{}", i["path"]);
            match b["contents"]["inline"].as_str() {
                Some(text) => {
                    assert_eq!(keys(&i["contents"]), ["source"], "{i}");
                    let url = i["contents"]["source"].as_str().unwrap();
                    assert!(url.starts_with("data:"), "{url}");
                    urls.push(url.to_string());
                    texts.push(text.as_bytes().to_vec());
                }
                None => assert_eq!(i["contents"], b["contents"], "{}", i["path"]),
            }
        }
        assert_eq!(decode_data_urls(&urls), texts);

        let file = |path: &str| {
            ign_files
                .iter()
                .find(|f| f["path"] == path)
                .unwrap_or_else(|| panic!("no {path}"))
        };
        // The image: downloaded from the feed and verified by the image's real sha512.
        let img = file("/opt/extensions/hello/hello-v1.0-x86-64.raw");
        assert_eq!(img["mode"], 0o644);
        assert_eq!(
            img["contents"]["source"],
            "https://downloads.example.com/hello/hello-v1.0-x86-64.raw"
        );
        let out = Command::new("sha512sum").arg(&image).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        let sum = sum.split_whitespace().next().unwrap();
        assert_eq!(
            img["contents"]["verification"],
            json!({"hash": format!("sha512-{sum}")})
        );
        assert_eq!(
            ign["storage"]["directories"],
            json!([{"path": "/opt/extensions/hello", "mode": 0o755}])
        );
        assert_eq!(file("/etc/sysupdate.hello.d/hello.conf")["mode"], 0o644);
        if with_extras {
            let conf = file("/etc/keepalived/keepalived.conf");
            assert_eq!(conf["mode"], 0o600);
            let decoded = decode_data_urls(&[conf["contents"]["source"].as_str().unwrap().into()]);
            assert_eq!(decoded[0], config.as_bytes());
            let ring = file("/etc/systemd/import-pubring.gpg");
            assert_eq!(ring["mode"], 0o644);
            let decoded = decode_data_urls(&[ring["contents"]["source"].as_str().unwrap().into()]);
            assert_eq!(decoded[0], key, "the key does not survive the data: URL");
        }
    }
}

#[test]
fn any_text_survives_the_data_url() {
    use sysext_assembler::provisioning::ignition::text_data_url;
    let mut texts = awkward_texts();
    // ASCII text that percent-escaping wins for, with the characters URL parsers treat as syntax:
    // Go's url.Parse (Ignition's) would cut at `#` or `?`, and `%25`/`%zz` must stay literal.
    texts.extend(
        [
            "router_id CP_1 # comment\n",
            "script \"/bin/check?x=1&y=2\" 100%25 %zz %\n",
            "a+b c/d:e;f,g@h$i!j*k'l(m)n[o]p{q}r|s\\t^u`v<w>x\n",
        ]
        .map(String::from),
    );
    let urls: Vec<String> = texts.iter().map(|t| text_data_url(t)).collect();
    let decoded = decode_data_urls(&urls);
    for ((url, text), bytes) in urls.iter().zip(&texts).zip(decoded) {
        assert_eq!(bytes, text.as_bytes(), "{text:?} as {url}");
        // Only unreserved characters and %XX escapes, so no URL parser can read syntax into it.
        if let Some(data) = url.strip_prefix("data:,") {
            let b = data.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    assert!(
                        b.len() > i + 2 && b[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit),
                        "{url}"
                    );
                    i += 3;
                } else {
                    assert!(
                        b[i].is_ascii_alphanumeric() || b"-._~".contains(&b[i]),
                        "{:?} unescaped in {url}",
                        b[i] as char
                    );
                    i += 1;
                }
            }
        } else {
            assert!(url.starts_with("data:;base64,"), "{url}");
        }
    }
    assert!(
        urls.iter().filter(|u| u.starts_with("data:,")).count() >= 3,
        "the ASCII texts should be percent-escaped"
    );
}

#[test]
fn the_drop_in_detects_a_version_change() {
    // Run the drop-in's ExecStartPre/ExecStartPost shell lines for real around a link change.
    let (tmp, built) = hello_feed();
    let (doc, _) = butane(&built.manifest, URL, &[]);
    let dropin = doc["systemd"]["units"][2]["dropins"][0]["contents"]
        .as_str()
        .unwrap()
        .to_string();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/extensions")).unwrap();
    fs::create_dir_all(root.join("run")).unwrap();
    fs::write(root.join("v1.raw"), "1").unwrap();
    fs::write(root.join("v2.raw"), "2").unwrap();
    let shell_lines = |prefix: &str| -> Vec<String> {
        dropin
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter(|l| l.starts_with("/usr/bin/sh -c "))
            .map(|l| {
                let script = l.trim_start_matches("/usr/bin/sh -c ").trim_matches('"');
                script
                    .replace("/etc/", &format!("{}/etc/", root.display()))
                    .replace("/run/", &format!("{}/run/", root.display()))
            })
            .collect()
    };
    let sh = |script: &str| {
        assert!(
            Command::new("sh")
                .args(["-c", script])
                .status()
                .unwrap()
                .success(),
            "{script}"
        )
    };
    let link = root.join("etc/extensions/hello.raw");
    for (changed, new_target) in [(false, "v1.raw"), (true, "v2.raw")] {
        let _ = fs::remove_file(root.join("run/reboot-required"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("v1.raw"), &link).unwrap();
        shell_lines("ExecStartPre=").iter().for_each(|s| sh(s));
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(root.join(new_target), &link).unwrap();
        shell_lines("ExecStartPost=").iter().for_each(|s| sh(s));
        assert_eq!(
            root.join("run/reboot-required").exists(),
            changed,
            "target {new_target}"
        );
    }
}

#[test]
fn without_config_and_key_the_rest_is_there_and_the_key_is_asked_for() {
    let (_tmp, built) = hello_feed();
    let (doc, err) = butane(&built.manifest, "https://downloads.example.com/hello", &[]);
    let paths: Vec<&str> = doc["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/opt/extensions/hello/hello-v1.0-x86-64.raw",
            "/etc/sysupdate.hello.d/hello.conf",
            "/etc/sysupdate.d/noop.conf"
        ]
    );
    // No trailing slash given: still one slash before the file name.
    assert_eq!(
        file(&doc, paths[0])["contents"]["source"],
        "https://downloads.example.com/hello/hello-v1.0-x86-64.raw"
    );
    assert!(
        err.contains("no --signing-key") && err.contains("/etc/systemd/import-pubring.gpg"),
        "{err}"
    );
}

/// A seeded generator of awkward text: quotes, backslashes, tabs, CR, control characters,
/// non-ASCII, YAML indicators, leading spaces, blank and whitespace-only lines, trailing newlines.
fn awkward_texts() -> Vec<String> {
    let pieces = [
        "global_defs {",
        "  router_id A",
        "\t",
        "\"",
        "'",
        "\\",
        ": ",
        "- ",
        "# ",
        "---",
        "...",
        "|",
        ">",
        "&a",
        "*a",
        "!tag",
        "{",
        "}",
        "[",
        "]",
        "%",
        "@",
        "`",
        "\r",
        "\u{1}",
        "\u{7f}",
        "ü",
        "€",
        "😀",
        "\u{feff}",
        "\u{2028}",
        "\u{85}",
        " ",
        "  ",
        "\n",
        "\n\n",
        "0644",
        "yes",
        "~",
        "null",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut texts = vec![
        String::new(),
        "\n".into(),
        " leading".into(),
        "trailing  \n".into(),
        "a\n \nb\n".into(),
        "x\n\n\n".into(),
    ];
    for _ in 0..300 {
        let n = (next() % 12) as usize;
        texts.push(
            (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect(),
        );
    }
    texts
}

#[test]
fn any_text_survives_the_yaml_round_trip() {
    use sysext_assembler::provisioning::butane::{quote, yaml_text};
    let texts = awkward_texts();
    // One document holding every text twice: as a block-or-quoted value and as a quoted scalar,
    // at the indentation the config uses.
    let mut doc = String::from("items:\n");
    for text in &texts {
        doc.push_str(&format!("  - text: {}\n", yaml_text(text, 6)));
        doc.push_str(&format!("    quoted: {}\n", quote(text)));
    }
    let parsed = parse_yaml(&doc);
    let items = parsed["items"].as_array().unwrap();
    assert_eq!(items.len(), texts.len());
    for (item, text) in items.iter().zip(&texts) {
        // What the parser returns must be exactly the input, byte for byte.
        assert_eq!(
            item["text"].as_str().unwrap_or(""),
            text,
            "block form of {text:?}"
        );
        assert_eq!(
            item["quoted"].as_str().unwrap_or(""),
            text,
            "quoted form of {text:?}"
        );
    }
}

#[test]
fn bad_input_is_refused() {
    let (tmp, built) = hello_feed();
    let m = &built.manifest;
    // Each refusal holds for both outputs (assert_refused): exit 2, what is wrong (and where the
    // command says it, what to do) on stderr, nothing on stdout.
    assert_refused(
        m,
        "ftp://x/",
        &[],
        &[
            "--update-url \"ftp://x/\": must start with https://",
            "give the feed's https:// URL",
        ],
    );
    assert_refused(
        m,
        "https://a b/",
        &[],
        &["--update-url \"https://a b/\": contains whitespace or control characters"],
    );
    let armored = tmp.path().join("key.asc");
    fs::write(&armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n").unwrap();
    let junk = tmp.path().join("junk.gpg");
    fs::write(&junk, "junk").unwrap();
    for (key, needles) in [
        (
            &armored,
            [
                "is ASCII-armored; systemd's keyring must be binary",
                "use `gpg --export KEYID > key.gpg`",
            ],
        ),
        (
            &junk,
            [
                "does not start with an OpenPGP public key packet",
                "export it with `gpg --export KEYID > key.gpg`",
            ],
        ),
    ] {
        let named = format!("the signing key {}", key.display());
        assert_refused(
            m,
            URL,
            &["--signing-key".as_ref(), key.as_os_str()],
            &[&named, needles[0], needles[1]],
        );
    }
    let binary = tmp.path().join("binary.conf");
    fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert_refused(
        m,
        URL,
        &["--config".as_ref(), binary.as_os_str()],
        &[&format!(
            "the keepalived config {} is not UTF-8 text",
            binary.display()
        )],
    );

    // Signed images: a policy needs a certificate; bad policies and certificates are refused
    // with what to do.
    assert_refused(
        m,
        URL,
        &["--image-policy".as_ref(), "root=signed".as_ref()],
        &[
            "the following required arguments were not provided",
            "--verity-certificate <FILE>",
        ],
    );
    let cert = tmp.path().join("cert.pem");
    fs::write(&cert, CERT_A).unwrap();
    let known_flags = "systemd 257 knows verity, signed,";
    let see = "see systemd.image-policy(7)";
    for (policy, needles) in [
        (
            "root=sign",
            [
                "the image policy rule \"root=sign\" has the unknown flag \"sign\"",
                known_flags,
            ],
        ),
        (
            "rootfs=signed",
            [
                "the image policy names the unknown partition \"rootfs\"",
                "systemd 257 knows root, usr,",
            ],
        ),
        (
            "root=signed:root=absent",
            ["the image policy has two rules for root", "give one"],
        ),
        (
            "=absent:=ignore",
            [
                "the image policy has two rules for the default (empty partition name)",
                "give one",
            ],
        ),
        (
            "root=signed usr=signed",
            [
                "the image policy \"root=signed usr=signed\" contains ' '",
                see,
            ],
        ),
        ("", ["the image policy is empty", see]),
    ] {
        assert_refused(
            m,
            URL,
            &[
                "--verity-certificate".as_ref(),
                cert.as_os_str(),
                "--image-policy".as_ref(),
                policy.as_ref(),
            ],
            &["bad --image-policy: ", needles[0], needles[1]],
        );
    }
    let key_and_cert = tmp.path().join("key-and-cert.pem");
    fs::write(
        &key_and_cert,
        format!("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n{CERT_A}"),
    )
    .unwrap();
    let two = tmp.path().join("two.pem");
    fs::write(&two, format!("{CERT_A}{CERT_B}")).unwrap();
    let der = tmp.path().join("cert.der");
    fs::write(&der, [0x30, 0x82, 0x03, 0x22, 0x30, 0x82, 0xff]).unwrap();
    let not_base64 = tmp.path().join("bad64.pem");
    fs::write(&not_base64, CERT_A.replace("MIID", "MI!D")).unwrap();
    let not_x509 = tmp.path().join("notx509.pem");
    // Valid base64 of "hello world": armor and encoding right, contents no certificate.
    fs::write(
        &not_x509,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    // openssl would take either of these blocks for a certificate too; systemd only the first.
    // One file with the other block last, one with it first.
    let [x509, trusted] = [
        ("x509.pem", "X509 CERTIFICATE", false),
        ("trusted.pem", "TRUSTED CERTIFICATE", true),
    ]
    .map(|(name, label, other_first)| {
        let other = CERT_B.replace("CERTIFICATE", label);
        let path = tmp.path().join(name);
        let text = if other_first {
            format!("{other}{CERT_A}")
        } else {
            format!("{CERT_A}{other}")
        };
        fs::write(&path, text).unwrap();
        path
    });
    let cut = tmp.path().join("cut.pem");
    fs::write(&cut, &CERT_A[..200]).unwrap();
    let one_block = "give a file with exactly one -----BEGIN CERTIFICATE----- block";
    for (path, needles) in [
        (
            &key_and_cert,
            [
                "it holds a private key, which must never be copied to nodes",
                "give the certificate alone",
            ],
        ),
        (
            &two,
            [
                "it holds 2 certificates",
                "give each certificate in a file of its own",
            ],
        ),
        (
            &der,
            [
                "is not PEM text",
                "convert a DER certificate with `openssl x509 -inform DER",
            ],
        ),
        (
            &not_base64,
            ["its certificate is not valid base64", "BEGIN and END lines"],
        ),
        (
            &not_x509,
            ["its PEM block is not an X.509 certificate", "DER SEQUENCE"],
        ),
        (
            &cut,
            [
                "has no -----END CERTIFICATE----- line",
                "the file is cut short",
            ],
        ),
        (
            &x509,
            [
                "it holds a PEM block labelled \"X509 CERTIFICATE\"",
                one_block,
            ],
        ),
        (
            &trusted,
            [
                "it holds a PEM block labelled \"TRUSTED CERTIFICATE\"",
                one_block,
            ],
        ),
    ] {
        let named = format!("the verity certificate {}", path.display());
        assert_refused(
            m,
            URL,
            &["--verity-certificate".as_ref(), path.as_os_str()],
            &[&named, needles[0], needles[1]],
        );
    }
    assert_refused(
        m,
        URL,
        &[
            "--verity-certificate".as_ref(),
            cert.as_os_str(),
            "--verity-certificate".as_ref(),
            cert.as_os_str(),
        ],
        &[&format!(
            "the verity certificate {} is given twice (same SHA-256 fingerprint",
            cert.display()
        )],
    );

    let mut manifest: Value = serde_json::from_str(&fs::read_to_string(m).unwrap()).unwrap();
    manifest["image"]["sha512"] = "abc".into();
    let bad = tmp.path().join("bad.manifest.json");
    fs::write(&bad, manifest.to_string()).unwrap();
    assert_refused(
        &bad,
        URL,
        &[],
        &["the manifest's sha512 \"abc\" is not 128 lowercase hex digits"],
    );
    manifest["image"]["sha512"] = "0".repeat(128).into();
    manifest["name"] = "x y".into();
    fs::write(&bad, manifest.to_string()).unwrap();
    assert_refused(
        &bad,
        URL,
        &[],
        &[
            "the name \"x y\" contains ' '",
            "only [A-Za-z0-9._+-] is allowed",
        ],
    );
}
