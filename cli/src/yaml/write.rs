//! Writes JSON values as block YAML in kubectl's layout.
//!
//! serde_yaml would turn an arbitrary-precision number (a sum beyond 64 bits)
//! into a float or a quoted string; here a number is written exactly as its
//! JSON text, which is also a valid YAML integer or float.

use serde_json::Value;

/// The YAML text of `value`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, depth: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // A map inside a sequence item starts on the dash's line.
        if i > 0 {
            indent(out, depth);
        }
        out.push_str(&string(key));
        out.push(':');
        write_value_after_key(out, value, depth);
    }
}

fn write_value_after_key(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            indent(out, depth + 2);
            write_map(out, map, depth + 2);
        }
        // kubectl does not indent a sequence under its key.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            indent(out, depth);
            write_seq(out, items, depth);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], depth: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, depth);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, depth + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, depth + 2),
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Plain when a YAML reader (1.1 or 1.2) would read it back as the same
/// string, else double-quoted (a JSON string is a valid YAML one).
fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_whitespace() || s.ends_with(char::is_whitespace) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    !looks_typed(s)
}

/// Words and numbers some YAML reader would not read as a string.
fn looks_typed(s: &str) -> bool {
    const WORDS: [&str; 14] = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", ".nan",
        "<<",
    ];
    let lower = s.to_ascii_lowercase();
    if WORDS.contains(&lower.as_str()) {
        return true;
    }
    // Anything starting like a number (digits, sign, dot) is quoted: cheaper
    // than knowing every reader's number grammar, and still readable.
    let first = s.as_bytes()[0];
    first.is_ascii_digit() || ((first == b'.' || first == b'+') && s.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::read::parse_stream;
    use serde_json::json;

    #[test]
    fn kubectl_layout() {
        let v = json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"metadata": {"name": "a"}, "spec": {"args": {}, "list": [1, [2, 3], {"x": null}]}},
                "plain",
            ],
        });
        let expected = "\
apiVersion: v1
kind: List
items:
- metadata:
    name: a
  spec:
    args: {}
    list:
    - 1
    - - 2
      - 3
    - x: null
- plain
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn huge_integer_is_a_plain_integer() {
        let n: Value = serde_json::from_str("333333283333335000000").unwrap();
        let v = json!({"status": {"result": n}});
        let text = to_yaml(&v);
        assert_eq!(text, "status:\n  result: 333333283333335000000\n");
        assert_eq!(parse_stream(&text).unwrap()[0].value, v);
    }

    #[test]
    fn strings_that_need_quotes_round_trip() {
        let strings = [
            "",
            " x",
            "x ",
            "yes",
            "No",
            "null",
            "~",
            "123",
            "1.5",
            "-1",
            ".5",
            "a: b",
            "a #b",
            "- x",
            "#x",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "[x",
            "{x",
            "line\nnext",
            "tab\t",
            "x:",
            "true",
            "0x1f",
            "ok",
            "a-b",
            "std.sum",
            "/tmp/x y",
            "sha256:ab",
            "日本",
        ];
        for s in strings {
            let v = json!({ s: [s] });
            let text = to_yaml(&v);
            assert_eq!(parse_stream(&text).unwrap()[0].value, v, "{s:?} -> {text}");
        }
        assert_eq!(to_yaml(&json!("std.sum")), "std.sum\n");
        assert_eq!(to_yaml(&json!("sha256:ab")), "sha256:ab\n");
    }

    #[test]
    fn empty_and_top_level_scalars() {
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_yaml(&json!(9)), "9\n");
    }
}
