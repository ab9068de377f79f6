//! Reads a multi-document YAML stream into JSON values, remembering the line
//! of every field so that a validation error can say `FILE:LINE`.
//!
//! serde_yaml only knows positions for syntax errors, so the stream is read
//! from saphyr-parser's events instead, and scalars are resolved here by the
//! YAML 1.2 core schema (the schema Kubernetes manifests are written for).

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Deeper nesting than this is refused instead of risking the stack.
const MAX_DEPTH: usize = 200;

/// A YAML syntax (or structure) error at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// One document of the stream.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    /// Line of the document's first node.
    pub line: usize,
    lines: HashMap<String, usize>,
}

impl Document {
    /// The line of `field` (`spec.map.shardSize`, `spec.parallel[1].args`),
    /// or of its nearest ancestor present in the document when the field
    /// itself is missing (a required field that was left out).
    pub fn line_of(&self, field: &str) -> usize {
        let mut segments = split_path(field);
        loop {
            if let Some(line) = self.lines.get(&segments.join(".")) {
                return *line;
            }
            if segments.pop().is_none() {
                return self.line;
            }
        }
    }
}

/// `a.b[2].c` and `a.b.2.c` both become `[a, b, 2, c]`.
fn split_path(field: &str) -> Vec<String> {
    field
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses every document; empty documents (a stray `---`) are skipped, as
/// kubectl does.
pub fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        lines: HashMap::new(),
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                reader.lines.clear();
                reader.anchors.clear();
                let (first, first_span) = reader.next()?;
                let line = line(&first_span);
                let value = reader.node(first, first_span, &mut Vec::new())?;
                match reader.next()? {
                    (Event::DocumentEnd, _) => {}
                    (_, span) => return Err(at(&span, "expected the end of the document")),
                }
                if !value.is_null() {
                    let lines = std::mem::take(&mut reader.lines);
                    docs.push(Document { value, line, lines });
                }
            }
            Event::StreamStart | Event::Nothing => {}
            _ => return Err(at(&span, "expected a document")),
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    lines: HashMap<String, usize>,
}

fn line(span: &Span) -> usize {
    span.start.line().max(1)
}

fn at(span: &Span, message: &str) -> YamlError {
    YamlError {
        line: line(span),
        message: message.to_string(),
    }
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(YamlError {
                line: 1,
                message: "unexpected end of input".into(),
            }),
        }
    }

    /// Reads the node that starts with `event`; `path` is where it sits.
    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        path: &mut Vec<String>,
    ) -> Result<Value, YamlError> {
        if path.len() > MAX_DEPTH {
            return Err(at(&span, "the document is nested too deeply"));
        }
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (resolve_scalar(&text, style, tag.as_deref()), anchor)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(v) => (v.clone(), 0),
                None => return Err(at(&span, "alias to an unknown anchor")),
            },
            Event::SequenceStart(anchor, _) => (self.sequence(path)?, anchor),
            Event::MappingStart(anchor, _) => (self.mapping(path)?, anchor),
            _ => return Err(at(&span, "expected a value")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn sequence(&mut self, path: &mut Vec<String>) -> Result<Value, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok(Value::Array(items));
            }
            path.push(items.len().to_string());
            self.lines.insert(path.join("."), line(&span));
            let item = self.node(event, span, path);
            path.pop();
            items.push(item?);
        }
    }

    fn mapping(&mut self, path: &mut Vec<String>) -> Result<Value, YamlError> {
        let mut map = Map::new();
        // `<<: *defaults` merge keys (kubectl's YAML reader honours them):
        // applied at the end, so keys written in this mapping win.
        let mut merged: Vec<(Map<String, Value>, usize)> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            let (key, style) = match event {
                Event::MappingEnd => break,
                Event::Scalar(text, style, ..) => (text.into_owned(), style),
                _ => return Err(at(&span, "a mapping key must be a plain value")),
            };
            if key == "<<" && style == ScalarStyle::Plain {
                let (event, value_span) = self.next()?;
                let value = self.node(event, value_span, path)?;
                merged.extend(
                    merge_sources(value, &span)?
                        .into_iter()
                        .map(|m| (m, line(&span))),
                );
                continue;
            }
            if map.contains_key(&key) {
                return Err(at(&span, &format!("duplicate key '{key}'")));
            }
            path.push(key.clone());
            self.lines.insert(path.join("."), line(&span));
            let value = self
                .next()
                .and_then(|(event, span)| self.node(event, span, path));
            path.pop();
            map.insert(key, value?);
        }
        for (source, merge_line) in merged {
            for (key, value) in source {
                if !map.contains_key(&key) {
                    path.push(key.clone());
                    self.lines.entry(path.join(".")).or_insert(merge_line);
                    path.pop();
                    map.insert(key, value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// The mappings a merge key names: one mapping, or a list of them (earlier
/// ones win, as YAML's merge type says).
fn merge_sources(value: Value, span: &Span) -> Result<Vec<Map<String, Value>>, YamlError> {
    let not_a_map = || {
        at(
            span,
            "a merge key (<<) takes a mapping or a list of mappings",
        )
    };
    match value {
        Value::Object(map) => Ok(vec![map]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(not_a_map()),
            })
            .collect(),
        _ => Err(not_a_map()),
    }
}

fn scan_error(e: &ScanError) -> YamlError {
    YamlError {
        line: e.marker().line().max(1),
        message: e.info().to_string(),
    }
}

/// The YAML 1.2 core schema: plain `null`/`~`/empty, `true`/`false`, ints
/// and floats are typed; everything quoted or block-styled is a string. An
/// explicit `!!str` (or other core tag) wins.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let string = || Value::String(text.to_string());
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        return match tag.suffix.as_str() {
            "str" => string(),
            "null" => Value::Null,
            _ => plain_scalar(text).unwrap_or_else(string),
        };
    }
    if style != ScalarStyle::Plain {
        return string();
    }
    plain_scalar(text).unwrap_or_else(string)
}

fn plain_scalar(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    integer(text).or_else(|| float(text)).map(Value::Number)
}

/// Decimal integers of any size stay exact (serde_json's arbitrary
/// precision); `0x` and `0o` forms fit in 64 bits or are strings.
fn integer(text: &str) -> Option<Number> {
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let digits = if trimmed.is_empty() { "0" } else { trimmed };
    let json = if negative && digits != "0" {
        format!("-{digits}")
    } else {
        digits.to_string()
    };
    serde_json::from_str(&json).ok()
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`; infinities and NaN
/// have no JSON form and are left as strings.
fn float(text: &str) -> Option<Number> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, frac) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_lines() {
        let text = "\
apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: squares}
spec:
  map:
    source:
      items: [1, 'two', 3.5]
    shardSize: 0
  parallel:
  - function: std.echo
    args: {a: ~}
";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(
            d.value["spec"]["map"]["source"]["items"],
            json!([1, "two", 3.5])
        );
        assert_eq!(d.value["spec"]["parallel"][0]["args"]["a"], Value::Null);
        assert_eq!(d.line_of("kind"), 2);
        assert_eq!(d.line_of("spec.map.shardSize"), 8);
        assert_eq!(d.line_of("spec.map.fanout"), 5, "missing field: its parent");
        assert_eq!(d.line_of("spec.parallel[0].args.a"), 11);
        assert_eq!(d.line_of("spec.parallel.0"), 10);
        assert_eq!(d.line_of("nothing.here"), 1);
    }

    #[test]
    fn several_documents_and_their_lines() {
        let text = "---\na: 1\n---\n---\n# comment\nb:\n  c: true\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 2, "the empty document is skipped");
        assert_eq!(docs[1].value, json!({"b": {"c": true}}));
        assert_eq!(docs[1].line_of("b.c"), 7);
        assert_eq!(docs[1].line, 6);
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse_stream(
            "[null, ~, '', true, False, 007, -12, +3, 0x1f, 1e3, .5, 333333283333335000000, yes, '1', !!str 2, .inf]",
        )
        .unwrap();
        let v = &docs[0].value;
        assert_eq!(v[0], Value::Null);
        assert_eq!(v[1], Value::Null);
        assert_eq!(v[2], json!(""));
        assert_eq!(v[3], json!(true));
        assert_eq!(v[4], json!(false));
        assert_eq!(v[5], json!(7));
        assert_eq!(v[6], json!(-12));
        assert_eq!(v[7], json!(3));
        assert_eq!(v[8], json!(31));
        assert_eq!(v[9], json!(1000.0));
        assert_eq!(v[10], json!(0.5));
        assert_eq!(v[11].to_string(), "333333283333335000000");
        assert_eq!(v[12], json!("yes"));
        assert_eq!(v[13], json!("1"));
        assert_eq!(v[14], json!("2"));
        assert_eq!(v[15], json!(".inf"));
    }

    #[test]
    fn anchors_and_aliases() {
        let docs = parse_stream("a: &x {f: 1}\nb: *x\n").unwrap();
        assert_eq!(docs[0].value["b"], json!({"f": 1}));
    }

    #[test]
    fn merge_keys() {
        let text = "\
base: &base {pool: fast, timeout: 5s}
more: &more {retry: 3, pool: slow}
task:
  timeout: 9s
  <<: [*base, *more]
";
        let docs = parse_stream(text).unwrap();
        let task = &docs[0].value["task"];
        assert_eq!(task, &json!({"timeout": "9s", "pool": "fast", "retry": 3}));
        assert_eq!(docs[0].line_of("task.timeout"), 4);
        assert_eq!(docs[0].line_of("task.retry"), 5);
        assert!(parse_stream("a:\n  <<: 3\n").is_err());
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = parse_stream("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        let err = parse_stream("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        let err = parse_stream("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            err,
            YamlError {
                line: 3,
                message: "duplicate key 'a'".into()
            }
        );
    }
}
