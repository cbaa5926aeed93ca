//! Names that end up in file names, in extension-release and in sysupdate patterns: the extension
//! NAME and VERSION, the architecture, and the output file names built from them. They are
//! validated here once so that no odd character can reach a path, a MatchPattern or a shell.

use std::fmt;

use anyhow::{bail, Result};
use clap::ValueEnum;

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
/// The names and aliases here are the only list: `--help`, clap's errors, the manifest,
/// extension-release and [`fmt::Display`] all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Arch {
    #[value(name = "x86-64", alias = "x86_64", alias = "amd64")]
    X86_64,
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_choice(self, f)
    }
}

/// Writes a choice (an architecture, a compressor, ...) by its name, the first of its
/// `#[value(...)]` names: what `Display` shows and the manifest stores.
pub fn write_choice<T: ValueEnum>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let possible = value
        .to_possible_value()
        .expect("no choice is skipped (#[value(skip)])");
    f.write_str(possible.get_name())
}

/// Reads a choice by its name or one of its aliases, as clap does on the command line; the
/// error names `what` and lists the names and aliases.
pub fn parse_choice<T: ValueEnum>(what: &str, text: &str) -> Result<T> {
    if let Ok(value) = T::from_str(text, false) {
        return Ok(value);
    }
    let possible: Vec<_> = T::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .collect();
    let names: Vec<&str> = possible.iter().map(|p| p.get_name()).collect();
    let aliases: Vec<&str> = possible
        .iter()
        .flat_map(|p| p.get_name_and_aliases().skip(1))
        .collect();
    let aliases = if aliases.is_empty() {
        String::new()
    } else {
        format!(" (aliases: {})", aliases.join(", "))
    };
    bail!("unknown {what} {text:?}; use {}{aliases}", one_of(&names))
}

/// `a, b or c`: the accepted names as an error message lists them.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// A choice stored in the manifest by its name (`#[serde(with = "crate::names::choice")]`):
/// written as [`write_choice`] shows it, read back by its name only, without the command line's
/// aliases, so a manifest says each choice one way.
pub mod choice {
    use clap::ValueEnum;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: ValueEnum, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let possible = value
            .to_possible_value()
            .expect("no choice is skipped (#[value(skip)])");
        serializer.serialize_str(possible.get_name())
    }

    pub fn deserialize<'de, T: ValueEnum, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(deserializer)?;
        T::value_variants()
            .iter()
            .find(|v| v.to_possible_value().is_some_and(|p| p.get_name() == text))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(ValueEnum::to_possible_value)
                    .map(|p| p.get_name().to_string())
                    .collect();
                D::Error::custom(format!(
                    "unknown value {text:?}; expected one of {}",
                    names.join(", ")
                ))
            })
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
            assert_eq!(
                parse_choice::<Arch>("architecture", input).unwrap(),
                want,
                "{input}"
            );
        }
        let err = parse_choice::<Arch>("architecture", "i686")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown architecture \"i686\"; use x86-64 or arm64 (aliases: x86_64, amd64, aarch64)"
        );
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
