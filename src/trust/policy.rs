//! The image policy that makes systemd-sysext demand a signature (systemd.image-policy(7)),
//! checked here against what systemd 257 parses before it reaches a provisioning config: on the
//! node, systemd-sysext.service fails at boot on a policy it cannot parse, merging no extension
//! at all.

use anyhow::{bail, Result};

/// systemd's own policy for system extensions from an untrusted place (`image_policy_sysext_strict`
/// in src/shared/image-policy.c, used for the ESP's /.extra/sysext/): the image must carry a root
/// or /usr partition protected by dm-verity with a signed root hash; every other partition is
/// ignored. A plain SquashFS image (no partition table) counts as an unprotected root and is
/// refused, as is a DDI without a signature or with one no trusted certificate verifies.
pub const DEFAULT_POLICY: &str = "root=signed+absent:usr=signed+absent";

/// Partition identifiers systemd 257 knows (`partition_designator_table` in src/shared/gpt.c).
const DESIGNATORS: [&str; 13] = [
    "root",
    "usr",
    "home",
    "srv",
    "esp",
    "xbootldr",
    "swap",
    "root-verity",
    "usr-verity",
    "root-verity-sig",
    "usr-verity-sig",
    "tmp",
    "var",
];

/// Policy flags systemd 257 knows (`policy_flag_from_string_one` in src/shared/image-policy.c).
const FLAGS: [&str; 12] = [
    "verity",
    "signed",
    "encrypted",
    "unprotected",
    "unused",
    "absent",
    "open",
    "ignore",
    "read-only-on",
    "read-only-off",
    "growfs-on",
    "growfs-off",
];

/// Checks `policy` against the grammar of systemd.image-policy(7) as systemd 257 (Flatcar
/// Stable's) parses it: `*`, `-` or `~`, or colon-separated `PARTITION=FLAG[+FLAG...]` rules, at
/// most one per partition and one default (empty PARTITION). Stricter than systemd in one way:
/// no whitespace and no empty rule, since the policy goes unquoted into a unit's command line.
pub fn validate_policy(policy: &str) -> Result<()> {
    let see = "see systemd.image-policy(7); the default is \
               root=signed+absent:usr=signed+absent";
    if policy.is_empty() {
        bail!("the image policy is empty (systemd would read it as \"-\", which uses no partition at all); {see}");
    }
    if let Some(c) = policy
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "=:+-*~".contains(*c)))
    {
        bail!("the image policy {policy:?} contains {c:?}; it is made of partition names, flags and = : + only ({see})");
    }
    if matches!(policy, "*" | "-" | "~") {
        return Ok(());
    }
    let mut seen: Vec<&str> = Vec::new();
    for rule in policy.split(':') {
        let Some((partition, flags)) = rule.split_once('=') else {
            bail!("the image policy rule {rule:?} has no '=': rules are PARTITION=FLAG+FLAG, separated by ':' ({see})");
        };
        if !partition.is_empty() && !DESIGNATORS.contains(&partition) {
            bail!(
                "the image policy names the unknown partition {partition:?}; systemd 257 knows {} \
                 (and an empty name for the default rule)",
                DESIGNATORS.join(", ")
            );
        }
        if seen.contains(&partition) {
            let which = if partition.is_empty() {
                "the default (empty partition name)"
            } else {
                partition
            };
            bail!("the image policy has two rules for {which}; give one");
        }
        seen.push(partition);
        if flags == "-" {
            continue;
        }
        for flag in flags.split('+') {
            if !FLAGS.contains(&flag) {
                bail!(
                    "the image policy rule {rule:?} has the unknown flag {flag:?}; systemd 257 knows {}",
                    FLAGS.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Whether `policy` (valid, see `validate_policy`) lets a root without dm-verity through: a bare
/// SquashFS is an unprotected root partition to systemd. Decided by the root rule, else the
/// default rule; a policy with neither is taken to allow it (nothing here contradicts it).
pub fn allows_unprotected_root(policy: &str) -> bool {
    let rules: Vec<(&str, &str)> = policy
        .split(':')
        .filter_map(|r| r.split_once('='))
        .collect();
    let flags = rules
        .iter()
        .find(|(p, _)| *p == "root")
        .or_else(|| rules.iter().find(|(p, _)| p.is_empty()))
        .map(|(_, flags)| *flags);
    match flags {
        None => true,
        Some(flags) => flags
            .split('+')
            .any(|f| matches!(f, "unprotected" | "open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_systemd_257_parses_are_accepted() {
        for p in [
            DEFAULT_POLICY,
            "*",
            "-",
            "~",
            "root=signed:usr=signed:=absent",
            "=ignore",
            "root=verity+signed+read-only-on:usr=-",
            "usr-verity-sig=unused+absent",
        ] {
            validate_policy(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn policies_systemd_257_refuses_are_refused() {
        for (p, needle) in [
            ("", "empty"),
            ("root=signed:", "no '='"),
            ("root", "no '='"),
            ("root=signed:root=verity", "two rules for root"),
            ("=absent:=ignore", "the default"),
            ("rot=signed", "unknown partition \"rot\""),
            ("root=sign", "unknown flag \"sign\""),
            ("root=signed+squashfs", "unknown flag"),
            ("root=signed :usr=signed", "contains ' '"),
            ("Root=signed", "contains 'R'"),
            ("root=signed;x", "contains ';'"),
        ] {
            let e = validate_policy(p).expect_err(p).to_string();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }
}
