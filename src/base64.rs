//! Standard base64 with padding (RFC 4648, section 4): Ignition's `data:` URLs carry files in it,
//! and systemd's verity signature JSON carries the PKCS#7 signature in it. Decoding is strict
//! (canonical padding, no whitespace), because it reads signature partitions from anywhere.

use anyhow::{bail, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn decode(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        bail!(
            "base64 text of {} characters (not a multiple of 4)",
            bytes.len()
        );
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, quad) in bytes.chunks(4).enumerate() {
        let last = index + 1 == bytes.len() / 4;
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            bail!("misplaced base64 padding");
        }
        let mut n = 0u32;
        for (i, &c) in quad[..4 - padding].iter().enumerate() {
            let Some(value) = ALPHABET.iter().position(|&a| a == c) else {
                bail!("{:?} is not a base64 character", c as char);
            };
            n |= (value as u32) << (18 - 6 * i);
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - padding;
        if decoded[keep..].iter().any(|&b| b != 0) {
            bail!("non-canonical base64 (bits set in the padding)");
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(input.as_bytes()), want, "{input}");
            assert_eq!(decode(want).unwrap(), input.as_bytes(), "{want}");
        }
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in ["Zg=", "Zg=a", "Z===", "Zh==", "Zm9v\n", "Zg==Zg=="] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
