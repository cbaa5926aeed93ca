//! What provisioning puts on a Flatcar node for one image from a feed: the directories, files,
//! links and units, described once. `sysext-assembler butane` writes this description either as
//! a Butane config ([`butane`]) or (`--ignition`) as the Ignition config Butane would make of it
//! ([`ignition`]); both come from the same [`Node`], so the two outputs cannot disagree about
//! what a node gets. The files given for the node are read and checked by [`inputs`].
//!
//! The node downloads the image into /opt/extensions/NAME/ and Ignition checks it against the
//! sha512 from the manifest before anything uses it, links /etc/extensions/NAME.raw to it,
//! installs the same sysupdate transfer file `build --update-url` writes, and enables the
//! systemd-sysupdate timer with the drop-in that updates this component (the pattern of
//! Flatcar's sysext-bakery). Optionally it places keepalived.conf readable by root only and the
//! feed's public key that the transfer's `Verify=yes` checks SHA256SUMS.gpg against, and, for
//! signed images, the certificates systemd verifies their dm-verity signatures with and the image
//! policy that makes systemd-sysext.service refuse what no trusted key signed.

use anyhow::{bail, Result};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

use crate::feed::manifest::Manifest;
use crate::feed::sysupdate::{render_transfer, validate_update_url};
use crate::names::{image_file_name, transfer_file_name, validate_name, validate_version};
use crate::trust::policy::{self, DEFAULT_POLICY};

pub mod butane;
pub mod ignition;
pub mod inputs;

/// Where keepalived reads its configuration by default.
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
/// The keyring systemd-sysupdate (through systemd-pull) checks signatures against. systemd 257
/// reads it instead of /usr/lib/systemd/import-pubring.gpg; 262 reads it when there is no
/// /etc/systemd/import-pubring.pgp and trusts /usr/lib/systemd/import-pubring.pgp besides
/// (tests/system/test_sysupdate.py, test_keyring).
pub const IMPORT_PUBRING: &str = "/etc/systemd/import-pubring.gpg";
/// Where systemd (250 and later) looks for certificates to verify dm-verity root hash signatures
/// in userspace, besides /run/verity.d and /usr/lib/verity.d (`validate_signature_userspace` in
/// src/shared/dissect-image.c): files named `*.crt`, PEM.
pub const VERITY_D: &str = "/etc/verity.d";
/// The drop-in that gives systemd-sysext.service its image policy.
pub const IMAGE_POLICY_DROPIN: &str = "image-policy.conf";
/// Where systemd-sysext 259 and later read their image policy for every run, by hand or through
/// the unit or Varlink ([SysExt] ImagePolicy=, sysext.conf(5)); 257 and 258 ignore the file.
pub const SYSEXT_CONF_DROPIN: &str = "/etc/systemd/sysext.conf.d/image-policy.conf";
/// Flatcar's workaround: plain `systemd-sysupdate` (the service's ExecStart) fails without any
/// transfer in /etc/sysupdate.d; this one never matches anything.
pub const NOOP_TRANSFER: &str = "[Source]\nType=regular-file\nPath=/\nMatchPattern=invalid@v.raw\n[Target]\nType=regular-file\nPath=/\n";

/// Everything provisioning creates on the node, in the order the configs list it.
pub struct Node {
    /// The extension's name (`NAME` in the paths).
    pub name: String,
    /// The image's file name, `NAME-vVERSION-ARCH.raw`.
    pub image_file: String,
    pub directories: Vec<Directory>,
    pub files: Vec<File>,
    pub links: Vec<Link>,
    pub units: Vec<Unit>,
}

pub struct Directory {
    pub path: String,
    pub mode: u32,
}

pub struct File {
    pub path: String,
    pub mode: u32,
    /// Why the mode is what it is, when that is not obvious.
    pub mode_note: Option<&'static str>,
    /// Said above the entry where the format allows comments.
    pub comment: Option<&'static str>,
    pub contents: Contents,
}

impl File {
    /// A file readable by everyone (0644) whose mode and place need no explanation.
    fn plain(path: impl Into<String>, contents: Contents) -> File {
        File {
            path: path.into(),
            mode: 0o644,
            mode_note: None,
            comment: None,
            contents,
        }
    }
}

pub enum Contents {
    /// Text placed as is.
    Text(String),
    /// Bytes placed as is (a `data:` URL in both formats).
    Binary(Vec<u8>),
    /// Downloaded by Ignition and refused unless its sha512 (hex) matches.
    Remote { url: String, sha512: String },
}

/// A symbolic link.
pub struct Link {
    pub path: String,
    pub target: String,
}

pub struct Unit {
    pub name: String,
    /// Said above the entry where the format allows comments.
    pub comment: Option<&'static str>,
    pub enabled: Option<bool>,
    pub dropins: Vec<Dropin>,
}

pub struct Dropin {
    pub name: String,
    pub contents: String,
}

/// What a node trusts signed images by: certificates (checked by [`crate::disk::verity`]) and the image
/// policy systemd-sysext.service merges with.
pub struct Trust {
    pub certificates: Vec<TrustedCertificate>,
    pub policy: String,
}

pub struct TrustedCertificate {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    pub pem: String,
}

/// The systemd-sysext.service drop-in that merges with `policy`. systemd-sysext 257 reads its
/// image policy from `--image-policy=` only (sysext.conf's ImagePolicy= came in 259), so the
/// drop-in replaces the unit's commands with the same ones plus the policy; upstream's unit
/// refreshes on reload too, which must not bypass the policy either.
pub fn image_policy_dropin(policy: &str) -> String {
    format!(
        "# The image policy applies to every extension systemd-sysext.service merges.\n\
         [Service]\n\
         ExecStart=\n\
         ExecStart=systemd-sysext refresh --image-policy={policy}\n\
         ExecReload=\n\
         ExecReload=systemd-sysext refresh --image-policy={policy}\n"
    )
}

/// Checks that the manifest names a deployable image and returns (name, image file name).
fn deployable(manifest: &Manifest) -> Result<(String, String)> {
    validate_name(&manifest.name)?;
    validate_version(&manifest.version)?;
    let file = image_file_name(&manifest.name, &manifest.version, manifest.arch);
    if manifest.image.file != file {
        bail!(
            "the manifest's image file {:?} is not the name build gives {file:?}",
            manifest.image.file
        );
    }
    let sha512 = &manifest.image.sha512;
    if sha512.len() != 128
        || !sha512
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        bail!("the manifest's sha512 {sha512:?} is not 128 lowercase hex digits");
    }
    Ok((manifest.name.clone(), file))
}

/// The node for the image of `manifest` fed from `update_url`, with keepalived's `config`, the
/// feed's public `key` and the `trust` for signed images when given.
pub fn describe(
    manifest: &Manifest,
    update_url: &str,
    config: Option<&str>,
    key: Option<&[u8]>,
    trust: Option<&Trust>,
) -> Result<Node> {
    validate_update_url(update_url)?;
    let (name, image_file) = deployable(manifest)?;
    let transfer = render_transfer(&name, update_url)?;
    let dir = format!("/opt/extensions/{name}");
    let image_path = format!("{dir}/{image_file}");

    let mut files = vec![
        File {
            path: image_path.clone(),
            mode: 0o644,
            mode_note: None,
            comment: Some("Ignition refuses the download unless its sha512 is the manifest's."),
            contents: Contents::Remote {
                url: format!("{}/{image_file}", update_url.trim_end_matches('/')),
                sha512: manifest.image.sha512.clone(),
            },
        },
        File::plain(
            format!("/etc/sysupdate.{name}.d/{}", transfer_file_name(&name)),
            Contents::Text(transfer),
        ),
        File::plain(
            "/etc/sysupdate.d/noop.conf",
            Contents::Text(NOOP_TRANSFER.into()),
        ),
    ];
    if let Some(key) = key {
        files.push(File::plain(IMPORT_PUBRING, Contents::Binary(key.to_vec())));
    }
    if let Some(trust) = trust {
        files.extend(trust_files(&name, trust));
    }
    if let Some(config) = config {
        files.push(File {
            path: KEEPALIVED_CONF.into(),
            mode: 0o600,
            mode_note: Some("it holds the VRRP password"),
            comment: None,
            contents: Contents::Text(config.into()),
        });
    }

    let mut units = update_units(&name);
    if let Some(trust) = trust {
        units.push(sysext_policy_unit(trust));
    }
    Ok(Node {
        directories: vec![Directory {
            path: dir,
            mode: 0o755,
        }],
        files,
        links: vec![Link {
            path: format!("/etc/extensions/{name}.raw"),
            target: image_path,
        }],
        units,
        name,
        image_file,
    })
}

/// The certificates systemd checks dm-verity signatures with (one file each), and the image
/// policy for every systemd-sysext run (systemd 259 and later).
fn trust_files(name: &str, trust: &Trust) -> Vec<File> {
    let mut files = Vec::new();
    for cert in &trust.certificates {
        files.push(File {
            path: format!("{VERITY_D}/{name}-{}.crt", &cert.fingerprint[..16]),
            mode: 0o644,
            mode_note: None,
            comment: Some(
                "systemd verifies dm-verity signatures against every *.crt here; the name \
                 holds the start of the certificate's SHA-256 fingerprint.",
            ),
            contents: Contents::Text(cert.pem.clone()),
        });
    }
    files.push(File {
        path: SYSEXT_CONF_DROPIN.into(),
        mode: 0o644,
        mode_note: None,
        comment: Some(
            "systemd 259 and later apply this policy to every systemd-sysext run, also by hand; \
             older ones only to the service (its drop-in below).",
        ),
        contents: Contents::Text(format!("[SysExt]\nImagePolicy={}\n", trust.policy)),
    });
    files
}

/// The sysupdate timers, enabled, and the drop-in that updates this extension and asks for a
/// reboot (/run/reboot-required) when the current version changed.
fn update_units(name: &str) -> Vec<Unit> {
    let marker = |which: &str| format!("/run/sysupdate-{name}.{which}");
    let dropin = format!(
        "[Service]\n\
         ExecStartPre=/usr/bin/sh -c \"readlink --canonicalize /etc/extensions/{name}.raw > {before}\"\n\
         ExecStartPre=/usr/lib/systemd/systemd-sysupdate -C {name} update\n\
         ExecStartPost=/usr/bin/sh -c \"readlink --canonicalize /etc/extensions/{name}.raw > {after}\"\n\
         ExecStartPost=/usr/bin/sh -c \"if ! cmp --silent {before} {after}; then touch /run/reboot-required; fi\"\n",
        before = marker("before"),
        after = marker("after"),
    );
    vec![
        Unit {
            name: "systemd-sysupdate.timer".into(),
            comment: None,
            enabled: Some(true),
            dropins: Vec::new(),
        },
        Unit {
            name: "systemd-sysupdate-update.timer".into(),
            comment: Some(
                "systemd 262 renamed the timer; the old name is only an alias there, and \
                 presets match real names.",
            ),
            enabled: Some(true),
            dropins: Vec::new(),
        },
        Unit {
            name: "systemd-sysupdate.service".into(),
            comment: Some(
                "systemd-sysupdate-update.service since systemd 262, which reads drop-ins \
                 for this alias too.",
            ),
            enabled: None,
            dropins: vec![Dropin {
                name: format!("{name}.conf"),
                contents: dropin,
            }],
        },
    ]
}

/// systemd-sysext.service under the image policy (its drop-in), for systemd before 259.
fn sysext_policy_unit(trust: &Trust) -> Unit {
    Unit {
        name: "systemd-sysext.service".into(),
        comment: Some(
            "The policy holds for every extension on the node: each must then be signed \
             by a key whose certificate is in a verity.d directory.",
        ),
        enabled: None,
        dropins: vec![Dropin {
            name: IMAGE_POLICY_DROPIN.into(),
            contents: image_policy_dropin(&trust.policy),
        }],
    }
}

/// Refuses trust settings that contradict the image the manifest describes: the node would
/// refuse its own keepalived (and, since the policy holds for every extension, merge none), or
/// the certificates would check nothing.
pub fn check_trust_fits(manifest: &Manifest, path: &std::path::Path, trust: &Trust) -> Result<()> {
    let shown = path.display();
    if trust.policy == "*" {
        bail!(
            "--image-policy '*' lets every image through, signed or not, so the \
             --verity-certificate files would check nothing: keep the default policy \
             ({DEFAULT_POLICY}) or give one that demands signatures, or drop \
             --verity-certificate"
        );
    }
    let Some(ddi) = &manifest.ddi else {
        if !policy::allows_unprotected_root(&trust.policy) {
            bail!(
                "{shown} describes a bare SquashFS image, which carries no signature, and the \
                 image policy {} accepts only signed images: the node would refuse it, and with \
                 it every other extension. Build the image with --format ddi, sign it \
                 (sysext-assembler sign) and give that manifest, or drop --verity-certificate",
                trust.policy
            );
        }
        return Ok(());
    };
    let Some(fingerprint) = &ddi.certificate_fingerprint else {
        bail!(
            "{shown} describes an unsigned DDI, but --verity-certificate makes the node trust \
             signed images: sign it (sysext-assembler sign --key KEY --cert CERT IMAGE) and give \
             the manifest sign rewrote, or drop --verity-certificate"
        );
    };
    if !trust
        .certificates
        .iter()
        .any(|c| c.fingerprint == *fingerprint)
    {
        bail!(
            "{shown} says the image is signed by certificate {fingerprint}, which is none of the \
             --verity-certificate files ({}): the node would refuse it. Give the certificate of \
             the key that signed it (as well, during a key rotation)",
            trust
                .certificates
                .iter()
                .map(|c| c.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `data:;base64,…` for bytes placed as is (RFC 2397).
pub fn base64_data_url(bytes: &[u8]) -> String {
    format!("data:;base64,{}", BASE64.encode(bytes))
}
