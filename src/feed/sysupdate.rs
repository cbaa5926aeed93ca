//! The systemd-sysupdate transfer file for a feed of these images (`NAME.conf`, written with
//! `--update-url`). Installed as `/etc/sysupdate.NAME.d/NAME.conf` it lets
//! `systemd-sysupdate -C NAME update` fetch new versions into /opt/extensions/NAME and point
//! `/etc/extensions/NAME.raw` at the newest, the layout Flatcar's sysext-bakery uses.
//!
//! File name: systemd up to 256 reads only `*.conf`. Since 257 the files are named `*.transfer`;
//! sysupdate reads `*.conf` only when none of its directories holds a `*.transfer` file, and then
//! warns (`context_read_definitions` in systemd's src/sysupdate/sysupdate.c). So `NAME.conf` works
//! on every systemd that has sysupdate, including Flatcar releases before 257, as long as the
//! component directory holds no `.transfer` file; on 257 and later it can be renamed to
//! `NAME.transfer` unchanged.
//!
//! Fields: sysupdate.d(5) requires `Type=`, `Path=` and `MatchPattern=` in [Source] and `Path=`
//! in [Target]; [Target] `Type=` and `MatchPattern=` have defaults but are written out so the
//! file says what it does.

use anyhow::{bail, Result};

use crate::names::version_with_v;

/// How many versions sysupdate keeps in /opt/extensions/NAME (the current one and two to roll
/// back to).
pub const INSTANCES_MAX: u32 = 3;

/// The `MatchPattern=` for the images of `name`: `NAME-v@v-%a.raw`. `@v` is the version, `%a`
/// the host's architecture in systemd's naming, which is what the image names use.
pub fn match_pattern(name: &str) -> String {
    // version_with_v("@v") keeps the single `v` rule of the image names in one place.
    format!("{name}-{}-%a.raw", version_with_v("@v"))
}

/// Whether `authority` (the part of an http:// URL before the path) names this machine: an
/// IPv4 loopback address, `[::1]` or `localhost`, with or without a port, without user info.
fn is_loopback(authority: &str) -> bool {
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => return v6.split(']').next() == Some("::1"),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the feed URL: https (sysupdate would fetch http:// too, but then anyone on the path
/// chooses what a node is offered when no signature is checked, and sees what it fetches), or
/// http:// to a loopback address, which never leaves the machine (a local mirror or proxy; the
/// system tests' feeds); and a plain directory URL: sysupdate appends `SHA256SUMS` and the image
/// names to it, so a `?` or `#` would put them into a query or fragment, and a `%` escape would
/// make the name on the server differ from the name in the transfer file.
pub fn validate_update_url(url: &str) -> Result<()> {
    let loopback_http = url
        .strip_prefix("http://")
        .filter(|rest| is_loopback(rest.split('/').next().unwrap_or("")));
    let Some(rest) = url.strip_prefix("https://").or(loopback_http) else {
        bail!(
            "--update-url {url:?}: must start with https:// (plain http:// is refused, except to \
             a loopback address such as 127.0.0.1: give the feed's https:// URL)"
        );
    };
    if rest.is_empty() || rest.starts_with('/') {
        bail!("--update-url {url:?}: has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("--update-url {url:?}: contains whitespace or control characters");
    }
    if let Some(c) = url.chars().find(|c| matches!(c, '?' | '#' | '%')) {
        bail!(
            "--update-url {url:?}: contains {c:?}; give the plain URL of the feed's directory \
             (no query, fragment or %-escape: sysupdate appends SHA256SUMS and the image names \
             to it)"
        );
    }
    Ok(())
}

/// Renders the transfer file for extension `name` fed from `url` (the directory that holds the
/// images and SHA256SUMS).
pub fn render_transfer(name: &str, url: &str) -> Result<String> {
    validate_update_url(url)?;
    let pattern = match_pattern(name);
    let url = url.trim_end_matches('/');
    Ok(format!(
        "# systemd-sysupdate transfer for the {name} system extension, written by sysext-assembler.
# Install as /etc/sysupdate.{name}.d/{name}.conf and run `systemd-sysupdate -C {name} update`.
# systemd 257 and later name these files {name}.transfer (same contents); they still read *.conf,
# with a warning, when the directory holds no *.transfer file.

[Transfer]
# Verify=yes (also systemd's default): sysupdate downloads SHA256SUMS.gpg next to SHA256SUMS and
# checks the detached signature against /etc/systemd/import-pubring.gpg before trusting any
# checksum. TLS only proves who served the feed, not who built it; the signature is what stops a
# compromised or mistaken web server from rolling an image onto every node. Publish
# SHA256SUMS.gpg (gpg --detach-sign --output SHA256SUMS.gpg SHA256SUMS) and install the public
# key. Only set Verify=no for a feed whose server you trust as much as your build, and know that
# the checksums then protect against corruption, not against tampering.
Verify=yes

[Source]
Type=url-file
Path={url}/
MatchPattern={pattern}

[Target]
Type=regular-file
Path=/opt/extensions/{name}
MatchPattern={pattern}
CurrentSymlink=/etc/extensions/{name}.raw
InstancesMax={INSTANCES_MAX}
"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_has_required_fields() {
        let text = render_transfer("keepalived", "https://example.org/feed/").unwrap();
        for line in [
            "[Transfer]",
            "Verify=yes",
            "[Source]",
            "Type=url-file",
            "Path=https://example.org/feed/",
            "MatchPattern=keepalived-v@v-%a.raw",
            "[Target]",
            "Type=regular-file",
            "Path=/opt/extensions/keepalived",
            "CurrentSymlink=/etc/extensions/keepalived.raw",
            "InstancesMax=3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn loopback_http_is_accepted() {
        for url in [
            "http://127.0.0.1:8080/feed/",
            "http://127.0.0.53/feed/",
            "http://localhost/feed/",
            "http://[::1]:80/feed/",
        ] {
            render_transfer("k", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "ftp://x/",
            "example.org",
            "https://",
            "https:///x",
            "https://a b/",
            "http://example.org/feed/",
            "http://127.0.0.1.example.org/feed/",
            "http://127.0.0.1@example.org/feed/",
            "http://[::2]/feed/",
            "https://example.org/feed/?token=1",
            "https://example.org/feed/#x",
            "https://example.org/f%65ed/",
        ] {
            assert!(render_transfer("k", url).is_err(), "{url} accepted");
        }
    }
}
