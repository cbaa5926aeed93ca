//! Names that end up in file names, in extension-release and in sysupdate patterns: the extension
//! NAME and VERSION, the architecture, and the output file names built from them. They are
//! validated here once so that no odd character can reach a path, a MatchPattern or a shell.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// Characters allowed in NAME and VERSION: what systemd-sysupdate's `@v` and image names accept
/// without quoting, and what is safe in a file name and a URL.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
}

/// Checks NAME (`what` = "name") or VERSION (`what` = "version") against `[A-Za-z0-9._+-]+`.
pub fn validate_token(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        bail!("the {what} is empty; give a non-empty {what} made of [A-Za-z0-9._+-]");
    }
    if let Some(bad) = value.chars().find(|c| !is_name_char(*c)) {
        bail!(
            "the {what} {value:?} contains {bad:?}; only [A-Za-z0-9._+-] is allowed, because it \
             becomes part of file names and of the sysupdate MatchPattern"
        );
    }
    if value.starts_with('.') || value.starts_with('-') {
        bail!("the {what} {value:?} must not start with '.' or '-' (it would make a hidden file or look like an option)");
    }
    Ok(())
}

/// Checks the extension NAME.
pub fn validate_name(name: &str) -> Result<()> {
    validate_token("name", name)
}

/// Checks the VERSION.
pub fn validate_version(version: &str) -> Result<()> {
    validate_token("version", version)
}

/// Checks an os-release style value (`ID=`, `SYSEXT_LEVEL=`): os-release(5) allows lower-case
/// letters, digits, `.`, `_` and `-`. `_any` is the only ID with a special meaning.
pub fn validate_os_release_value(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!(
            "the {what} {value:?} is not valid: os-release(5) allows only lower-case letters, \
             digits, '.', '_' and '-' (for example `flatcar` or `1.0`)"
        );
    }
    Ok(())
}

/// A CPU architecture, named as systemd names it (`ARCHITECTURE=` in extension-release, `%a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// systemd's name: `x86-64` or `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86-64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;

    /// Accepts systemd's names and the common aliases (`x86_64`, `amd64`, `aarch64`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "x86-64" | "x86_64" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => bail!(
                "unknown architecture {s:?}; use x86-64 or arm64 (aliases: x86_64, amd64, aarch64)"
            ),
        }
    }
}

/// `VERSION` as it appears in file names: with exactly one leading `v`.
pub fn version_with_v(version: &str) -> String {
    if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    }
}

/// Common stem of every per-image output: `NAME-vVERSION-ARCH`.
pub fn image_stem(name: &str, version: &str, arch: Arch) -> String {
    format!("{name}-{}-{arch}", version_with_v(version))
}

/// `NAME-vVERSION-ARCH.raw`
pub fn image_file_name(name: &str, version: &str, arch: Arch) -> String {
    format!("{}.raw", image_stem(name, version, arch))
}

/// `NAME-vVERSION-ARCH.manifest.json`
pub fn manifest_file_name(name: &str, version: &str, arch: Arch) -> String {
    format!("{}.manifest.json", image_stem(name, version, arch))
}

/// `NAME.conf`, the sysupdate transfer file for the feed.
pub fn transfer_file_name(name: &str) -> String {
    format!("{name}.conf")
}

/// Path of the extension-release file inside the image for extension `name`.
pub fn extension_release_path(name: &str) -> String {
    format!("usr/lib/extension-release.d/extension-release.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_aliases_normalise() {
        for (input, want) in [
            ("x86-64", Arch::X86_64),
            ("x86_64", Arch::X86_64),
            ("amd64", Arch::X86_64),
            ("arm64", Arch::Arm64),
            ("aarch64", Arch::Arm64),
        ] {
            assert_eq!(input.parse::<Arch>().unwrap(), want, "{input}");
        }
        let err = "i686".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("i686") && err.contains("x86-64"), "{err}");
    }

    #[test]
    fn file_names_have_one_v() {
        assert_eq!(
            image_file_name("keepalived", "2.3.4", Arch::X86_64),
            "keepalived-v2.3.4-x86-64.raw"
        );
        assert_eq!(
            image_file_name("keepalived", "v2.3.4", Arch::Arm64),
            "keepalived-v2.3.4-arm64.raw"
        );
        assert_eq!(
            manifest_file_name("keepalived", "2.3.4", Arch::Arm64),
            "keepalived-v2.3.4-arm64.manifest.json"
        );
    }

    #[test]
    fn tokens_are_checked() {
        assert!(validate_name("keepalived").is_ok());
        assert!(validate_version("2.3.4+nix.1_rc-2").is_ok());
        for bad in ["", "a b", "a/b", "ä", "x$y", ".hidden", "-rf", "a*"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn os_release_values_are_checked() {
        assert!(validate_os_release_value("os", "flatcar").is_ok());
        assert!(validate_os_release_value("os", "_any").is_ok());
        assert!(validate_os_release_value("sysext level", "1.0").is_ok());
        assert!(validate_os_release_value("os", "Flatcar").is_err());
        assert!(validate_os_release_value("os", "").is_err());
        assert!(validate_os_release_value("os", "a\nb").is_err());
    }
}
