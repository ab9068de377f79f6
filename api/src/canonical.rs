//! RFC 8785 (JSON Canonicalization Scheme) serialization.
//!
//! Stable ids hash this form, so it must be byte-identical on every machine:
//! object members sorted by their UTF-16 code units, no whitespace, numbers in
//! ECMAScript `Number.prototype.toString` form, strings with the minimal escapes.

use serde_json::Value;
use std::fmt::Write;

/// The canonical JSON text of `value`.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Appends the canonical JSON text of `value` to `out`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_map(out, map),
    }
}

/// Appends a JSON object in canonical form.
pub fn write_map(out: &mut String, map: &serde_json::Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    // JCS orders by UTF-16 code units, which differs from UTF-8 byte order
    // only for characters outside the Basic Multilingual Plane.
    keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, &map[key.as_str()]);
    }
    out.push('}');
}

/// JCS numbers are IEEE 754 doubles printed the way ECMAScript prints them, so
/// `2.0` and `2` are the same number; integers beyond 2^53 lose precision here
/// exactly as they would in any other JCS implementation.
fn write_number(out: &mut String, n: &serde_json::Number) {
    let f = n.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() {
        // JSON text cannot hold NaN or infinities; serde_json never produces them.
        out.push_str("null");
        return;
    }
    let mut buf = ryu_js::Buffer::new();
    out.push_str(buf.format_finite(f));
}

/// Appends `s` as a canonical JSON string.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `bytes` in lower-case hex (digests in ids and hashes).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_ecmascript() {
        let v: Value =
            serde_json::from_str("[2.0, 1e21, 1e-7, 0.5, -0, 123456789012, 1.5e300]").unwrap();
        assert_eq!(
            to_canonical_string(&v),
            "[2,1e+21,1e-7,0.5,0,123456789012,1.5e+300]"
        );
    }

    #[test]
    fn keys_sorted_by_utf16_and_strings_escaped() {
        let v = json!({"b": "x\ny\u{1}", "a": 1, "\u{20ac}": 2, "\u{1f600}": 3});
        assert_eq!(
            to_canonical_string(&v),
            "{\"a\":1,\"b\":\"x\\ny\\u0001\",\"\u{20ac}\":2,\"\u{1f600}\":3}"
        );
    }
}
