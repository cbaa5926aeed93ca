//! The checks of the disk image around the file system: for a DDI, the dm-verity hash tree
//! recomputed from the root partition and the root hash signature; for a bare SquashFS, only
//! that neither the manifest nor `--cert` expected a DDI.

use std::fs::File;
use std::path::Path;

use anyhow::Result;

use super::outcome::Check;
use crate::disk::ddi::{self, Ddi, SignatureJson};
use crate::feed::manifest::{DdiRecord, Manifest};
use crate::trust::certificate::Certificate;
use crate::trust::signing;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

use crate::hex;

/// The checks of the open image `file` of `len` bytes: `format` for a bare SquashFS;
/// `dm-verity` and `signature` for a DDI (only `dm-verity` when its tables cannot be read).
pub(super) fn checks(
    file: &mut File,
    len: u64,
    manifest: Option<&Manifest>,
    cert: Option<(&Path, &Certificate)>,
) -> Result<Vec<Check>> {
    if !ddi::looks_like_ddi(file)? {
        return Ok(vec![format_check(manifest, cert)]);
    }
    let layout = match ddi::read(file, len) {
        Ok(layout) => layout,
        Err(err) => {
            return Ok(vec![Check {
                name: "dm-verity",
                problems: vec![format!("not a readable DDI: {err:#}")],
                detail: "partition table and hash tree".to_string(),
            }])
        }
    };
    let expected = manifest.map(|m| m.ddi.as_ref());
    let (tree, root_hash) = tree_check(file, &layout, expected)?;
    let expected_fingerprint = expected
        .flatten()
        .and_then(|r| r.certificate_fingerprint.as_deref());
    let signature = match &layout.signature_json {
        None => unsigned_check(expected_fingerprint, cert),
        Some(json) => signature_check(json, root_hash.as_deref(), expected_fingerprint, cert)?,
    };
    Ok(vec![tree, signature])
}

/// A bare SquashFS: right unless the manifest describes a DDI or `--cert` wants a signature.
fn format_check(manifest: Option<&Manifest>, cert: Option<(&Path, &Certificate)>) -> Check {
    let mut problems = Vec::new();
    if manifest.is_some_and(|m| m.ddi.is_some()) {
        problems.push("the manifest describes a DDI, the image is a bare SquashFS".to_string());
    }
    if cert.is_some() {
        problems.push(
            "--cert given, but a bare SquashFS image carries no signature to check".to_string(),
        );
    }
    Check {
        name: "format",
        problems,
        detail: "SquashFS image".to_string(),
    }
}

/// The hash tree recomputed from the data, and its root hash against the manifest's
/// (`expected`: `None` without a manifest, `Some(None)` for a manifest of a bare SquashFS).
/// Returns the root hash when the tree holds.
fn tree_check(
    file: &mut File,
    layout: &Ddi,
    expected: Option<Option<&DdiRecord>>,
) -> Result<(Check, Option<String>)> {
    let mut problems = Vec::new();
    let root_hash = match ddi::check_tree(file, layout)? {
        Ok(hash) => Some(hex(&hash)),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    match (expected, &root_hash) {
        (Some(None), _) => problems
            .push("the manifest describes a bare SquashFS image, the image is a DDI".to_string()),
        (Some(Some(record)), Some(hash)) if record.root_hash != *hash => problems.push(format!(
            "root hash {hash} differs from the manifest's {}",
            record.root_hash
        )),
        _ => {}
    }
    let check = Check {
        name: "dm-verity",
        problems,
        detail: format!(
            "hash tree over {} data blocks recomputed from the {} root partition",
            layout.superblock.data_blocks, layout.arch
        ),
    };
    Ok((check, root_hash))
}

/// A DDI without a signature partition: right unless the manifest or `--cert` says it is signed.
fn unsigned_check(
    expected_fingerprint: Option<&str>,
    cert: Option<(&Path, &Certificate)>,
) -> Check {
    let mut problems = Vec::new();
    if let Some(fingerprint) = expected_fingerprint {
        problems.push(format!(
            "the image is not signed; its manifest says certificate {fingerprint} signed it"
        ));
    }
    if let Some((path, _)) = cert {
        problems.push(format!(
            "the image is not signed, so no key of {} signed it",
            path.display()
        ));
    }
    Check {
        name: "signature",
        problems,
        detail: "unsigned".to_string(),
    }
}

/// The signature partition's claims (root hash, certificate) against the image and the
/// manifest, and with `--cert` the PKCS#7 signature itself, checked as systemd checks it.
fn signature_check(
    json: &SignatureJson,
    root_hash: Option<&str>,
    expected_fingerprint: Option<&str>,
    cert: Option<(&Path, &Certificate)>,
) -> Result<Check> {
    let mut problems = Vec::new();
    if let Some(hash) = root_hash {
        if json.root_hash != hash {
            problems.push(format!(
                "the signature is for root hash {}, the image's is {hash}",
                json.root_hash
            ));
        }
    }
    let found = json.certificate_fingerprint.as_deref();
    if let Some(fingerprint) = expected_fingerprint {
        if found != Some(fingerprint) {
            problems.push(format!(
                "signed by certificate {}, the manifest says {fingerprint}",
                found.unwrap_or("(none named)")
            ));
        }
    }
    let detail = match cert {
        Some((path, certificate)) => {
            if found.is_some_and(|f| f != certificate.fingerprint()) {
                problems.push(format!(
                    "signed by certificate {}, not by {} ({})",
                    found.unwrap_or_default(),
                    path.display(),
                    certificate.fingerprint()
                ));
            }
            match BASE64.decode(&json.signature) {
                Err(err) => problems.push(format!("the signature is not base64: {err}")),
                Ok(der) => {
                    if let Err(why) = signing::verify(&json.root_hash, &der, certificate, path)? {
                        problems.push(why);
                    }
                }
            }
            format!("signature checked against {}", path.display())
        }
        // Nothing here covers the fingerprint: it is the partition's own claim.
        None => format!(
            "signature present, unchecked: it names certificate {}, which only --cert FILE checks",
            found.unwrap_or("(none)")
        ),
    };
    Ok(Check {
        name: "signature",
        problems,
        detail,
    })
}
