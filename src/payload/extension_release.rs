//! The extension-release file, `usr/lib/extension-release.d/extension-release.NAME`: what
//! systemd-sysext matches against the host's os-release before it merges an image. The build
//! writes it (a payload may not bring its own) and `verify` parses it back.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::names::{parse_choice, validate_os_release_value, Arch};

/// `ID=` value that matches every OS; SYSEXT_LEVEL is then not written.
pub const ANY_OS: &str = "_any";

/// Default `SYSEXT_LEVEL=` when the OS is not `_any` (Flatcar's os-release has `SYSEXT_LEVEL=1.0`).
pub const DEFAULT_SYSEXT_LEVEL: &str = "1.0";

/// The fields the tool writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRelease {
    /// `ID=`, [`ANY_OS`] or an os-release ID such as `flatcar`.
    pub os: String,
    /// `SYSEXT_LEVEL=`, present exactly when `os` is not [`ANY_OS`].
    pub sysext_level: Option<String>,
    pub arch: Arch,
    /// `EXTENSION_RELOAD_MANAGER=1`: systemd reloads units after merging, so units shipped in
    /// the image are seen without a manual daemon-reload.
    pub reload_manager: bool,
    /// `EXTENSION_RESTART_UNITS=`: units systemd-sysext 262 and later restart after a merge or
    /// refresh and stop on unmerge (older systemd ignores the key). Empty: the key is not written.
    pub restart_units: Vec<String>,
}

impl ExtensionRelease {
    /// Validates the options and applies the defaults: `os` defaults to `_any`; SYSEXT_LEVEL
    /// defaults to 1.0 for a specific OS and is refused with `_any`, where systemd ignores it.
    pub fn new(
        os: Option<&str>,
        sysext_level: Option<&str>,
        arch: Arch,
        reload_manager: bool,
        restart_units: Vec<String>,
    ) -> Result<Self> {
        for unit in &restart_units {
            validate_unit_name(unit)?;
        }
        let os = os.unwrap_or(ANY_OS);
        validate_os_release_value("--os", os)?;
        let sysext_level = if os == ANY_OS {
            if let Some(level) = sysext_level {
                bail!(
                    "--sysext-level {level} needs --os: with ID=_any systemd-sysext does not check \
                     SYSEXT_LEVEL, so give the OS the level belongs to (for example --os flatcar)"
                );
            }
            None
        } else {
            let level = sysext_level.unwrap_or(DEFAULT_SYSEXT_LEVEL);
            validate_os_release_value("--sysext-level", level)?;
            Some(level.to_string())
        };
        Ok(ExtensionRelease {
            os: os.to_string(),
            sysext_level,
            arch,
            reload_manager,
            restart_units,
        })
    }

    /// The file's contents: one `KEY=VALUE` per line, fixed order, trailing newline.
    pub fn render(&self) -> String {
        let mut text = format!("ID={}\n", self.os);
        if let Some(level) = &self.sysext_level {
            text.push_str(&format!("SYSEXT_LEVEL={level}\n"));
        }
        text.push_str(&format!("ARCHITECTURE={}\n", self.arch));
        if self.reload_manager {
            text.push_str("EXTENSION_RELOAD_MANAGER=1\n");
        }
        if !self.restart_units.is_empty() {
            text.push_str(&format!(
                "EXTENSION_RESTART_UNITS=\"{}\"\n",
                self.restart_units.join(" ")
            ));
        }
        text
    }

    /// Parses a file this tool wrote (or any extension-release with these keys). Unknown keys are
    /// refused, so a tampered or foreign file is noticed.
    pub fn parse(text: &str) -> Result<Self> {
        let fields = parse_fields(text)?;
        for key in fields.keys() {
            if !matches!(
                key.as_str(),
                "ID" | "SYSEXT_LEVEL"
                    | "ARCHITECTURE"
                    | "EXTENSION_RELOAD_MANAGER"
                    | "EXTENSION_RESTART_UNITS"
            ) {
                bail!("extension-release has the key {key}, which this tool never writes");
            }
        }
        let Some(os) = fields.get("ID") else {
            bail!("extension-release has no ID=")
        };
        let Some(arch) = fields.get("ARCHITECTURE") else {
            bail!("extension-release has no ARCHITECTURE=")
        };
        let reload_manager = match fields.get("EXTENSION_RELOAD_MANAGER").map(String::as_str) {
            None => false,
            Some("1") => true,
            Some(other) => {
                bail!("extension-release has EXTENSION_RELOAD_MANAGER={other}, expected 1")
            }
        };
        let restart_units = fields
            .get("EXTENSION_RESTART_UNITS")
            .map(|units| units.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let parsed = ExtensionRelease::new(
            Some(os),
            fields.get("SYSEXT_LEVEL").map(String::as_str),
            parse_choice("architecture", arch)?,
            reload_manager,
            restart_units,
        )?;
        if parsed.sysext_level.is_some() && !fields.contains_key("SYSEXT_LEVEL") {
            bail!("extension-release for ID={os} has no SYSEXT_LEVEL=");
        }
        Ok(parsed)
    }
}

/// Checks a unit name for `EXTENSION_RESTART_UNITS=`: what systemd-sysext accepts there (a plain
/// or instance unit name, `split_unit_string` in src/sysext/sysext.c), so that systemd does not
/// drop it with a warning at every merge.
pub fn validate_unit_name(unit: &str) -> Result<()> {
    const TYPES: [&str; 11] = [
        "service",
        "socket",
        "target",
        "device",
        "mount",
        "automount",
        "swap",
        "timer",
        "path",
        "slice",
        "scope",
    ];
    let (prefix, suffix) = unit.rsplit_once('.').unwrap_or((unit, ""));
    let valid = unit.len() <= 255
        && TYPES.contains(&suffix)
        && !prefix.is_empty()
        && !prefix.starts_with('@')
        && !prefix.ends_with('@')
        && prefix.matches('@').count() <= 1
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'));
    if !valid {
        bail!(
            "{unit:?} is not a unit name systemd-sysext restarts: give a full unit name such as \
             keepalived-sysext-apply.service (a template like foo@.service needs an instance)"
        );
    }
    Ok(())
}

/// Parses os-release style `KEY=VALUE` lines (comments and blank lines skipped, values optionally
/// in single or double quotes). Duplicate keys are refused.
pub fn parse_fields(text: &str) -> Result<BTreeMap<String, String>> {
    let mut fields = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: {line:?} is not KEY=VALUE", number + 1);
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            bail!("line {}: {key} is set twice", number + 1);
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatcar_with_reload() {
        let release =
            ExtensionRelease::new(Some("flatcar"), None, Arch::X86_64, true, vec![]).unwrap();
        let text = release.render();
        assert_eq!(
            text,
            "ID=flatcar\nSYSEXT_LEVEL=1.0\nARCHITECTURE=x86-64\nEXTENSION_RELOAD_MANAGER=1\n"
        );
        assert_eq!(ExtensionRelease::parse(&text).unwrap(), release);
    }

    #[test]
    fn restart_units_are_written_quoted_and_read_back() {
        let units = vec!["a.service".to_string(), "b@x.service".to_string()];
        let release =
            ExtensionRelease::new(Some("flatcar"), None, Arch::X86_64, true, units).unwrap();
        let text = release.render();
        assert!(
            text.ends_with("EXTENSION_RESTART_UNITS=\"a.service b@x.service\"\n"),
            "{text}"
        );
        assert_eq!(ExtensionRelease::parse(&text).unwrap(), release);
        for bad in [
            "a",
            "a.conf",
            "a@.service",
            "@a.service",
            "a/b.service",
            ".service",
        ] {
            let err = ExtensionRelease::new(None, None, Arch::X86_64, false, vec![bad.into()])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("is not a unit name systemd-sysext restarts"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn any_os_has_no_level() {
        let release = ExtensionRelease::new(None, None, Arch::Arm64, false, vec![]).unwrap();
        assert_eq!(release.render(), "ID=_any\nARCHITECTURE=arm64\n");
        assert_eq!(ExtensionRelease::parse(&release.render()).unwrap(), release);
        let err = ExtensionRelease::new(None, Some("1.0"), Arch::Arm64, false, vec![]).unwrap_err();
        assert!(err.to_string().contains("--sysext-level"), "{err}");
    }

    #[test]
    fn parse_refuses_foreign_keys_and_quotes_are_stripped() {
        assert!(ExtensionRelease::parse("ID=_any\nARCHITECTURE=arm64\nFOO=1\n").is_err());
        assert!(ExtensionRelease::parse("ID=flatcar\nARCHITECTURE=arm64\n").is_err());
        let parsed = ExtensionRelease::parse(
            "# c\nID=\"flatcar\"\nSYSEXT_LEVEL='1.0'\nARCHITECTURE=arm64\n",
        )
        .unwrap();
        assert_eq!(parsed.sysext_level.as_deref(), Some("1.0"));
    }
}
