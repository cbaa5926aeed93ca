//! How image entries are shown to people and scripts: `ls -l`-style lines like `unsquashfs -lls`
//! prints, and JSON objects. `inspect`, `diff` and `verify` share it so one entry reads the same
//! everywhere.

use serde_json::{json, Value};

use super::entries::ImageEntry;

/// `drwxr-xr-x`-style type and permission string, with s/S/t/T for setuid, setgid and sticky.
pub fn mode_string(entry: &ImageEntry) -> String {
    let m = entry.mode;
    let mut s = String::with_capacity(10);
    s.push(entry.kind.ls_letter());
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set_exec, set_plain)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        s.push(if m & (0o4 << shift) != 0 { 'r' } else { '-' });
        s.push(if m & (0o2 << shift) != 0 { 'w' } else { '-' });
        let exec = m & (0o1 << shift) != 0;
        s.push(match (m & bit != 0, exec) {
            (true, true) => *set_exec,
            (true, false) => *set_plain,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, so output does not depend on TZ.
pub fn utc_time(seconds: u32) -> String {
    let secs = i64::from(seconds);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One line: mode, uid/gid, size, mtime (UTC), `/path`, and ` -> target` for symlinks.
pub fn ls_line(entry: &ImageEntry) -> String {
    let size = match (entry.size, entry.device) {
        (Some(size), _) => size.to_string(),
        (None, Some(dev)) => format!(
            "{},{}",
            dev >> 8 & 0xfff,
            (dev & 0xff) | (dev >> 12 & 0xfff00)
        ),
        _ => "0".to_string(),
    };
    let mut line = format!(
        "{} {}/{} {:>10} {} /{}",
        mode_string(entry),
        entry.uid,
        entry.gid,
        size,
        utc_time(entry.mtime),
        entry.path
    );
    if let Some(target) = &entry.target {
        line.push_str(" -> ");
        line.push_str(target);
    }
    line
}

/// The entry as JSON: the manifest's field names plus owner and mtime.
pub fn entry_json(entry: &ImageEntry) -> Value {
    let mut value = json!({
        "path": entry.path,
        "type": entry.kind.as_str(),
        "mode": format!("{:04o}", entry.mode),
        "uid": entry.uid,
        "gid": entry.gid,
        "mtime": entry.mtime,
    });
    let object = value.as_object_mut().expect("built as an object");
    if let Some(size) = entry.size {
        object.insert("size".into(), json!(size));
    }
    if let Some(sha256) = &entry.sha256 {
        object.insert("sha256".into(), json!(sha256));
    }
    if let Some(target) = &entry.target {
        object.insert("target".into(), json!(target));
    }
    if let Some(device) = entry.device {
        object.insert("device".into(), json!(device));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc_time(u32::MAX), "2106-02-07 06:28:15");
    }
}
