//! The Ignition config (spec 3.3.0) of a [`Node`]: what `butane --strict` makes of the Butane
//! config `sysext-assembler butane` writes, for operators who provision without Butane.
//!
//! Spec 3.3.0 because it is what Butane's flatcar 1.0.0 variant produces, the newest spec the
//! config needs nothing beyond, and so the oldest Ignition that can read it. Text becomes a
//! `data:` URL as Butane does it (percent-escaped or base64, whichever is shorter) but is never
//! gzip-compressed: the config stays readable and needs no compression support.

use serde_json::{json, Map, Value};

use crate::provisioning::{base64_data_url, Contents, Node};

/// The Ignition config spec version written.
pub const SPEC_VERSION: &str = "3.3.0";

/// The config as pretty-printed JSON with a final newline.
pub fn render(node: &Node) -> String {
    let mut text = serde_json::to_string_pretty(&config(node)).expect("JSON values serialize");
    text.push('\n');
    text
}

fn config(node: &Node) -> Value {
    let directories: Vec<Value> = node
        .directories
        .iter()
        .map(|d| json!({"path": d.path, "mode": d.mode}))
        .collect();
    let files: Vec<Value> = node
        .files
        .iter()
        .map(|f| {
            let contents = match &f.contents {
                Contents::Text(text) => json!({"source": text_data_url(text)}),
                Contents::Binary(bytes) => json!({"source": base64_data_url(bytes)}),
                Contents::Remote { url, sha512 } => json!({
                    "source": url,
                    "verification": {"hash": format!("sha512-{sha512}")},
                }),
            };
            json!({"path": f.path, "mode": f.mode, "contents": contents})
        })
        .collect();
    let links: Vec<Value> = node
        .links
        .iter()
        .map(|l| json!({"path": l.path, "target": l.target, "hard": false}))
        .collect();
    let units: Vec<Value> = node
        .units
        .iter()
        .map(|u| {
            let mut unit = Map::new();
            unit.insert("name".into(), json!(u.name));
            if let Some(enabled) = u.enabled {
                unit.insert("enabled".into(), json!(enabled));
            }
            if !u.dropins.is_empty() {
                let dropins: Vec<Value> = u
                    .dropins
                    .iter()
                    .map(|d| json!({"name": d.name, "contents": d.contents}))
                    .collect();
                unit.insert("dropins".into(), json!(dropins));
            }
            Value::Object(unit)
        })
        .collect();
    json!({
        "ignition": {"version": SPEC_VERSION},
        "storage": {"directories": directories, "files": files, "links": links},
        "systemd": {"units": units},
    })
}

/// A `data:` URL holding `text`: percent-escaped (readable for ASCII text) or base64, whichever
/// is shorter. Only RFC 3986's unreserved characters stay unescaped, so no `?`, `#` or `%` in
/// the text can be taken for URL syntax by Ignition's URL parser.
pub fn text_data_url(text: &str) -> String {
    let mut escaped = String::from("data:,");
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            escaped.push(b as char);
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    let encoded = base64_data_url(text.as_bytes());
    if encoded.len() < escaped.len() {
        encoded
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_or_base64_whichever_is_shorter() {
        assert_eq!(text_data_url("a-b.c_d~e"), "data:,a-b.c_d~e");
        assert_eq!(text_data_url("abcdefgh #?%"), "data:,abcdefgh%20%23%3F%25");
        // Non-ASCII text triples in size escaped; base64 wins.
        assert_eq!(text_data_url("üüü"), "data:;base64,w7zDvMO8");
    }
}
