//! Limits on input, each in one place with its one wording: the CLI's
//! manifest reader, the validation layer, the server's request bodies and the
//! engine all read these constants and refuse with these sentences.
//! docs/limits.md lists every limit and what a user sees.

use serde_json::{Number, Value};

/// How deeply mappings and lists may sit inside one another in one value:
/// a manifest document (counted from its top mapping, which is level 1) or a
/// function's result. `{a: [1]}` nests 2 levels; a scalar nests none.
///
/// Why 64: serde_json reads at most 128 levels, and whatever a user hands
/// over is wrapped before it is read again: a store record adds up to six
/// levels, a request body two to five, and the engine adds a few when it
/// combines values (a sequence's `previous`, a parallel's list of results, a
/// continuation's `result`). 64 leaves every record and body far from 128,
/// while real manifests nest about ten levels.
pub const MAX_NESTING: usize = 64;

/// How deep a request body may nest: just below serde_json's own cap (128),
/// so that the parser never refuses a body in its own words. Any shallower
/// body is parsed, and each value in it is held to [`MAX_NESTING`] where it
/// is used: a manifest by validation (a 400 naming the field), a worker's
/// result by the engine (that task fails; the rest of the batch counts).
pub const MAX_BODY_NESTING: usize = 120;

/// The most bytes `kontinuum run` and `submit` read from one manifest file.
/// The file is read with this cap, so `/dev/zero` costs nothing. Equal to the
/// server's body limit, so a file that loads fits one submission about as
/// well (YAML and JSON spell data in about the same bytes). Written out
/// rather than taken from `endpoints`, so that this module stays a leaf; a
/// test holds the two equal.
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// The most values (scalars, mappings and lists) one YAML document may hold
/// once its aliases are expanded: an alias counts every value it copies, so
/// a few lines of nested aliases (a "billion laughs") stop here.
pub const MAX_DOCUMENT_VALUES: usize = 1_000_000;

/// The same count over all the documents of one file, so that many
/// documents of aliases cannot add up past what one may hold.
pub const MAX_FILE_VALUES: usize = 2 * MAX_DOCUMENT_VALUES;

/// The most documents one manifest file may hold.
pub const MAX_DOCUMENTS: usize = 10_000;

/// The shortest `timeout`: the engine counts time in whole milliseconds, so
/// anything shorter would be a timeout of zero that no attempt can meet.
pub const MIN_TIMEOUT_MS: u64 = 1;

/// Objects one map over a prefix may list: the listing is kept with the
/// map (about 100 bytes an object), so a larger set is split into several
/// maps by prefix.
pub const MAX_LISTED_OBJECTS: usize = 20_000;

/// Bytes one map leaf over objects holds at once (its byte range and the
/// end of its last line): a larger leaf asks for a smaller shardSize.
pub const MAX_LEAF_BYTES: u64 = 256 << 20;

/// What the validation layer, the YAML reader, the server and the engine say
/// about a value nested too deeply (after the field, or "the result is").
pub fn too_deep() -> String {
    format!(
        "nested more than {MAX_NESTING} levels deep (mappings and lists inside one another); flatten it"
    )
}

/// What the server says about a body deeper than [`MAX_BODY_NESTING`].
pub fn body_too_deep() -> String {
    format!(
        "the body is nested more than {MAX_BODY_NESTING} levels deep; a manifest or a value in it may be nested at most {MAX_NESTING} levels deep"
    )
}

/// How deep the JSON text `bytes` nests, counting no further than `cap + 1`
/// (brackets outside strings; the text need not be valid JSON). Cheap
/// enough to run before parsing anything.
pub fn json_nesting(bytes: &[u8], cap: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > cap {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What is said about a number outside what a 64-bit float holds, in YAML
/// (`1e400`, `.inf`) and in JSON (`1e400`) alike.
pub fn not_finite(text: &str) -> String {
    format!(
        "{text} is not a finite number (with a fraction or an exponent, a number must fit a 64-bit float: at most about 1.8e308); quote it to pass it as a string"
    )
}

/// What is said about a timeout shorter than [`MIN_TIMEOUT_MS`].
pub fn timeout_too_short(text: &str) -> String {
    format!("must be at least {MIN_TIMEOUT_MS}ms (found '{text}')")
}

/// How an attempt that outlived its `timeout` fails, whether the engine's
/// timer or the worker's noticed first.
pub const ATTEMPT_TIMED_OUT: &str = "attempt exceeded its timeout";

/// How deep `value` nests (see [`MAX_NESTING`]), counting no further than
/// `cap + 1`. Iterative: a value nested a million levels costs no stack.
pub fn nesting(value: &Value, cap: usize) -> usize {
    // Most results are scalars: no stack for them (this runs per completion).
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return 0;
    }
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, level)) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, level + 1))),
            _ => continue,
        }
        deepest = deepest.max(level);
        if level > cap {
            return deepest;
        }
    }
    deepest
}

/// Whether a JSON number is one Kontinuum accepts: any integer (kept exact,
/// also beyond 64 bits), or a number with a fraction or an exponent that a
/// 64-bit float holds.
pub fn number_ok(n: &Number) -> bool {
    let text = n.as_str();
    let integer = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    integer || n.as_f64().is_some()
}

/// The first problem of a value handed over whole (a function's result, a
/// call's arguments from code): too deep, or a number out of range.
pub fn value_problem(value: &Value) -> Option<String> {
    if nesting(value, MAX_NESTING) > MAX_NESTING {
        return Some(too_deep());
    }
    first_bad_number(value).map(|n| not_finite(n.as_str()))
}

/// Depth-first; the depth is known to be bounded by the caller.
fn first_bad_number(value: &Value) -> Option<&Number> {
    match value {
        Value::Number(n) if !number_ok(n) => Some(n),
        Value::Array(items) => items.iter().find_map(first_bad_number),
        Value::Object(map) => map.values().find_map(first_bad_number),
        _ => None,
    }
}

/// One step of a path into a document.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.parallel[1].args`: the way validation names fields.
fn field(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Where a manifest document nests beyond [`MAX_NESTING`], if it does: the
/// field that holds the deep data. `spec_schema` is the kind's CRD schema of
/// `spec`; the field named is the first on the way down whose content the
/// schema leaves free (`spec.call.args`, `spec.map.source.items[3]`).
pub(crate) fn too_deep_field(doc: &Value, spec_schema: Option<&Value>) -> Option<String> {
    if nesting(doc, MAX_NESTING) <= MAX_NESTING {
        return None;
    }
    let mut path = Vec::new();
    find_deep(doc, 1, &mut path);
    Some(holder(&path, spec_schema))
}

/// Numbers out of range in a document no deeper than [`MAX_NESTING`], as
/// (field, message).
pub(crate) fn number_problems(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    bad_numbers(doc, &mut Vec::new(), &mut out);
    out
}

/// Leaves in `path` the way to a mapping or list below [`MAX_NESTING`].
/// Recurses at most that deep.
fn find_deep<'a>(value: &'a Value, level: usize, path: &mut Vec<Step<'a>>) -> bool {
    let children: Vec<(Step<'a>, &'a Value)> = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Step::Index(i), v))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k), v)).collect(),
        _ => return false,
    };
    if level > MAX_NESTING {
        return true;
    }
    for (step, child) in children {
        path.push(step);
        if find_deep(child, level + 1, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// The field that holds the deep data: where the schema stops saying what
/// is inside (or the first two steps outside `spec`).
fn holder(path: &[Step], spec_schema: Option<&Value>) -> String {
    let mut end = path.len().min(2);
    if let (Some(Step::Key("spec")), Some(mut schema)) = (path.first(), spec_schema) {
        end = 1;
        for step in &path[1..] {
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                break;
            }
            let next = match step {
                Step::Key(k) => schema
                    .get("properties")
                    .and_then(|p| p.get(*k))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object())),
                Step::Index(_) => schema.get("items"),
            };
            end += 1;
            match next {
                Some(inner) => schema = inner,
                None => break,
            }
        }
    }
    field(&path[..end])
}

/// At most this many numbers are reported per document.
const NUMBERS_SHOWN: usize = 20;

fn bad_numbers<'a>(value: &'a Value, path: &mut Vec<Step<'a>>, out: &mut Vec<(String, String)>) {
    if out.len() >= NUMBERS_SHOWN {
        return;
    }
    match value {
        Value::Number(n) if !number_ok(n) => out.push((field(path), not_finite(n.as_str()))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                bad_numbers(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Step::Key(k));
                bad_numbers(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Longest `status.resultText`, in bytes.
pub const RESULT_TEXT_LIMIT: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_manifest_file_may_be_as_large_as_a_request_body() {
        assert_eq!(MAX_MANIFEST_BYTES, crate::endpoints::MAX_BODY_BYTES);
    }

    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn nesting_counts_containers() {
        assert_eq!(nesting(&json!(1), 64), 0);
        assert_eq!(nesting(&json!([]), 64), 1);
        assert_eq!(nesting(&json!({"a": [1, {"b": 2}]}), 64), 3);
        assert_eq!(nesting(&nested(64), 64), 64);
        assert_eq!(nesting(&nested(65), 64), 65);
        // Stops early: a deep value costs no more than the cap.
        assert_eq!(nesting(&nested(300), 64), 65);
    }

    #[test]
    fn numbers() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert!(number_ok(&n("1e308")));
        assert!(number_ok(&n("-2.5")));
        assert!(number_ok(&n("333333283333335000000")));
        assert!(
            number_ok(&n("1e-400")),
            "underflow is zero, not out of range"
        );
        assert!(!number_ok(&n("1e400")));
        assert!(!number_ok(&n("-1.0e309")));
    }

    #[test]
    fn json_nesting_counts_brackets_outside_strings() {
        assert_eq!(json_nesting(br#"1"#, 64), 0);
        assert_eq!(json_nesting(br#"{"a": [1, {"b": "[[[{"}]}"#, 64), 3);
        assert_eq!(json_nesting(br#"{"a": "\"[[", "b": [[]]}"#, 64), 3);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(json_nesting(deep.as_bytes(), 64), 65);
        for levels in [1, 10, 64, 65] {
            let v = nested(levels);
            assert_eq!(json_nesting(v.to_string().as_bytes(), 64), nesting(&v, 64));
        }
    }

    #[test]
    fn value_problems_say_what_is_wrong() {
        assert_eq!(value_problem(&nested(64)), None);
        assert_eq!(value_problem(&nested(65)), Some(too_deep()));
        let big: Value = serde_json::from_str(r#"{"x": [1, 1e400]}"#).unwrap();
        assert_eq!(value_problem(&big), Some(not_finite("1e+400")));
    }
}
