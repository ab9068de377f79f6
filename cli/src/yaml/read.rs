//! Reads a multi-document YAML stream into JSON values, remembering the line
//! of every field so that a validation error can say `FILE:LINE`.
//!
//! serde_yaml only knows positions for syntax errors, so the stream is read
//! from saphyr-parser's events instead, and scalars are resolved here by the
//! YAML 1.2 core schema (the schema Kubernetes manifests are written for).

use kontinuum_api::limits::{
    self, MAX_DOCUMENT_VALUES, MAX_DOCUMENTS, MAX_FILE_VALUES, MAX_MANIFEST_BYTES, MAX_NESTING,
};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// A YAML error at a 1-based line: malformed YAML, or a document beyond
/// one of the limits of `kontinuum_api::limits`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub message: String,
    /// False for a syntax error; true for a limit (the YAML itself is fine).
    pub limit: bool,
}

/// One document of the stream.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    /// Line of the document's first node.
    pub line: usize,
    lines: HashMap<String, usize>,
    /// Scalars that YAML reads as numbers but no JSON number can hold
    /// (`1e400`, `.inf`), as (field, message): refused like the same number
    /// in JSON (see `kontinuum_api::limits::not_finite`).
    pub problems: Vec<(String, String)>,
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
/// kubectl does. Refuses characters YAML does not allow, and documents beyond
/// the limits on values (aliases expanded), text and nesting.
pub fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
    // A byte order mark may open a YAML stream; the parser would take it
    // for part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    forbidden_characters(text)?;
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        lines: HashMap::new(),
        problems: Vec::new(),
        doc: Budget::default(),
        file: Budget::default(),
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                reader.lines.clear();
                reader.anchors.clear();
                reader.doc = Budget::default();
                let (first, first_span) = reader.next()?;
                let line = line(&first_span);
                let value = reader.node(first, first_span, &mut Vec::new())?;
                match reader.next()? {
                    (Event::DocumentEnd, _) => {}
                    (_, span) => return Err(at(&span, "expected the end of the document")),
                }
                if !value.is_null() {
                    if docs.len() == MAX_DOCUMENTS {
                        return Err(over_limit(
                            line,
                            format!("the file holds more than {MAX_DOCUMENTS} documents; split it"),
                        ));
                    }
                    let lines = std::mem::take(&mut reader.lines);
                    let problems = std::mem::take(&mut reader.problems);
                    docs.push(Document {
                        value,
                        line,
                        lines,
                        problems,
                    });
                }
            }
            Event::StreamStart | Event::Nothing => {}
            _ => return Err(at(&span, "expected a document")),
        }
    }
}

/// YAML allows tab, line feed, carriage return, NEL and the printable
/// characters; anything else (NUL, other C0 and C1 controls, DEL, U+FFFE,
/// U+FFFF) is refused rather than left to the parser, which ends the stream
/// at a NUL without a word.
fn forbidden_characters(text: &str) -> Result<(), YamlError> {
    let allowed = |c: char| match c {
        '\t' | '\n' | '\r' | '\u{85}' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    };
    let Some((at, c)) = text.char_indices().find(|&(_, c)| !allowed(c)) else {
        return Ok(());
    };
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let escape = if (c as u32) <= 0xff {
        format!("\\x{:02X}", c as u32)
    } else {
        format!("\\u{:04X}", c as u32)
    };
    Err(YamlError {
        line,
        message: format!(
            "column {column}: the character U+{:04X} is not allowed in YAML; remove it (in a double-quoted string, write it as \"{escape}\")",
            c as u32
        ),
        limit: false,
    })
}

/// Values and text read so far, aliases expanded.
#[derive(Clone, Copy, Default)]
struct Budget {
    values: usize,
    bytes: usize,
}

/// What a mapping or a list costs in itself (its contents count apart).
const ONE_VALUE: Budget = Budget {
    values: 1,
    bytes: 0,
};

/// An anchored value with what it cost, so an alias counts what it copies.
struct Anchor {
    value: Value,
    cost: Budget,
    nesting: usize,
}

/// One step of the path to a node: `lines` keys are dotted (`a.b.2`), fields
/// as validation names them (`a.b[2]`).
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn key_of(path: &[Step]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    parts.join(".")
}

fn field_of(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

struct Reader<'a> {
    parser: Parser<'a, StrInput<'a>>,
    anchors: HashMap<usize, Anchor>,
    lines: HashMap<String, usize>,
    problems: Vec<(String, String)>,
    doc: Budget,
    file: Budget,
}

fn line(span: &Span) -> usize {
    span.start.line().max(1)
}

fn at(span: &Span, message: &str) -> YamlError {
    YamlError {
        line: line(span),
        message: message.to_string(),
        limit: false,
    }
}

fn over_limit(line: usize, message: String) -> YamlError {
    YamlError {
        line,
        message,
        limit: true,
    }
}

/// Nested lists, `levels` deep: stands in for a node that would take the
/// document past [`MAX_NESTING`], so that validation refuses the document
/// (naming the field) without the reader building, or recursing into, more.
fn too_deep_marker(levels: usize) -> Value {
    let mut value = Value::Array(Vec::new());
    for _ in 1..levels.max(1) {
        value = Value::Array(vec![value]);
    }
    value
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(YamlError {
                line: 1,
                message: "unexpected end of input".into(),
                limit: false,
            }),
        }
    }

    /// Counts a value (and its text) against the document's and the file's
    /// budgets; `cost` is more than one value for an alias.
    fn spend(&mut self, span: &Span, cost: Budget) -> Result<(), YamlError> {
        let limits = [
            (
                &mut self.doc,
                MAX_DOCUMENT_VALUES,
                MAX_MANIFEST_BYTES,
                "the document",
            ),
            (
                &mut self.file,
                MAX_FILE_VALUES,
                2 * MAX_MANIFEST_BYTES,
                "the file",
            ),
        ];
        for (budget, values, bytes, what) in limits {
            budget.values += cost.values;
            budget.bytes += cost.bytes;
            if budget.values > values || budget.bytes > bytes {
                return Err(over_limit(
                    line(span),
                    format!(
                        "{what} holds more than {values} values or {} MiB of text once its aliases are expanded; make it smaller",
                        bytes >> 20
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads the node that starts with `event`; `path` is where it sits.
    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        path: &mut Vec<Step>,
    ) -> Result<Value, YamlError> {
        let before = self.doc;
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.spend(
                    &span,
                    Budget {
                        values: 1,
                        bytes: text.len(),
                    },
                )?;
                (self.scalar(&text, style, tag.as_deref(), path), anchor)
            }
            Event::Alias(id) => {
                let Some(anchor) = self.anchors.get(&id) else {
                    return Err(at(&span, "alias to an unknown anchor"));
                };
                let (cost, nesting) = (anchor.cost, anchor.nesting);
                if path.len() + nesting > MAX_NESTING {
                    (too_deep_marker(MAX_NESTING + 1 - path.len()), 0)
                } else {
                    self.spend(&span, cost)?;
                    (self.anchors[&id].value.clone(), 0)
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _)
                if path.len() >= MAX_NESTING =>
            {
                self.skip_rest(&span)?;
                (too_deep_marker(1), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.spend(&span, ONE_VALUE)?;
                (self.sequence(path)?, anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.spend(&span, ONE_VALUE)?;
                (self.mapping(path)?, anchor)
            }
            _ => return Err(at(&span, "expected a value")),
        };
        if anchor > 0 {
            let cost = Budget {
                values: self.doc.values - before.values,
                bytes: self.doc.bytes - before.bytes,
            };
            let nesting = limits::nesting(&value, MAX_NESTING);
            self.anchors.insert(
                anchor,
                Anchor {
                    value: value.clone(),
                    cost,
                    nesting,
                },
            );
        }
        Ok(value)
    }

    /// A scalar by the core schema; a number no JSON number can hold is
    /// noted as a problem of its field and kept as its text meanwhile.
    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        path: &[Step],
    ) -> Value {
        match resolve_scalar(text, style, tag) {
            Scalar::Value(v) => v,
            Scalar::NotFinite => {
                self.problems
                    .push((field_of(path), limits::not_finite(text)));
                Value::String(text.to_string())
            }
        }
    }

    /// Consumes the rest of a mapping or list that sits too deep, without
    /// building it: a counter, not recursion.
    fn skip_rest(&mut self, span: &Span) -> Result<(), YamlError> {
        let mut open = 1usize;
        while open > 0 {
            let (event, _) = self.next()?;
            match event {
                Event::SequenceStart(..) | Event::MappingStart(..) => open += 1,
                Event::SequenceEnd | Event::MappingEnd => open -= 1,
                Event::StreamEnd | Event::DocumentEnd => {
                    return Err(at(span, "unexpected end of the document"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn sequence(&mut self, path: &mut Vec<Step>) -> Result<Value, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok(Value::Array(items));
            }
            path.push(Step::Index(items.len()));
            self.lines.insert(key_of(path), line(&span));
            let item = self.node(event, span, path);
            path.pop();
            items.push(item?);
        }
    }

    fn mapping(&mut self, path: &mut Vec<Step>) -> Result<Value, YamlError> {
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
            self.spend(
                &span,
                Budget {
                    values: 0,
                    bytes: key.len(),
                },
            )?;
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
            path.push(Step::Key(key.clone()));
            self.lines.insert(key_of(path), line(&span));
            let value = self
                .next()
                .and_then(|(event, span)| self.node(event, span, path));
            path.pop();
            map.insert(key, value?);
        }
        for (source, merge_line) in merged {
            for (key, value) in source {
                if !map.contains_key(&key) {
                    path.push(Step::Key(key.clone()));
                    self.lines.entry(key_of(path)).or_insert(merge_line);
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
    let line = e.marker().line().max(1);
    // The scanner's own cap on flow nesting ([[[...), far past ours.
    if e.info() == "recursion limit exceeded" {
        return over_limit(line, format!("the document is {}", limits::too_deep()));
    }
    YamlError {
        line,
        message: e.info().to_string(),
        limit: false,
    }
}

/// A resolved scalar, or a number that no JSON number can hold.
enum Scalar {
    Value(Value),
    NotFinite,
}

/// The YAML 1.2 core schema: plain `null`/`~`/empty, `true`/`false`, ints
/// and floats are typed; everything quoted or block-styled is a string. An
/// explicit `!!str` (or other core tag) wins. Infinities, NaN and floats
/// beyond a double are refused, as the same numbers are in JSON.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Scalar {
    let string = || Scalar::Value(Value::String(text.to_string()));
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        return match tag.suffix.as_str() {
            "str" => string(),
            "null" => Scalar::Value(Value::Null),
            _ => plain_scalar(text).unwrap_or_else(string),
        };
    }
    if style != ScalarStyle::Plain {
        return string();
    }
    plain_scalar(text).unwrap_or_else(string)
}

fn plain_scalar(text: &str) -> Option<Scalar> {
    let value = match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Some(Scalar::NotFinite),
        _ => {
            return integer(text)
                .map(Value::Number)
                .map(Scalar::Value)
                .or_else(|| float(text));
        }
    };
    Some(Scalar::Value(value))
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

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`; beyond a double
/// it is [`Scalar::NotFinite`].
fn float(text: &str) -> Option<Scalar> {
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
    let parsed = text.parse::<f64>().ok()?;
    Some(match Number::from_f64(parsed) {
        Some(n) => Scalar::Value(Value::Number(n)),
        None => Scalar::NotFinite,
    })
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
        assert_eq!(
            docs[0].problems,
            [("[15]".to_string(), limits::not_finite(".inf"))]
        );
    }

    #[test]
    fn numbers_no_json_number_holds_are_problems_of_their_field() {
        let docs =
            parse_stream("a: {b: [1, 1e400, .inf]}\nc: .NaN\nd: '1e400'\ne: 1e-400\n").unwrap();
        assert_eq!(
            docs[0].problems,
            [
                ("a.b[1]".to_string(), limits::not_finite("1e400")),
                ("a.b[2]".to_string(), limits::not_finite(".inf")),
                ("c".to_string(), limits::not_finite(".NaN")),
            ]
        );
        assert_eq!(docs[0].value["d"], json!("1e400"), "quoted: a string");
        assert_eq!(docs[0].value["e"], json!(0.0), "underflow is zero");
        assert_eq!(docs[0].line_of("a.b[1]"), 1);
    }

    #[test]
    fn forbidden_characters_are_refused_with_their_line() {
        for (text, line, code) in [
            ("a: 1\n---\n\0\nb: 2\n", 3, "U+0000"),
            ("a: std.su\0m\n", 1, "U+0000"),
            ("a: 1\nb: x\u{1}y\n", 2, "U+0001"),
            ("a: 1\n\nb: \u{7f}\n", 3, "U+007F"),
            ("a: \u{9b}\n", 1, "U+009B"),
            ("a: \u{ffff}\n", 1, "U+FFFF"),
        ] {
            let err = parse_stream(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err:?}");
            assert!(err.message.contains(code), "{text:?}: {err:?}");
            assert!(!err.limit);
        }
        // Tabs, NEL, BOM and escapes are fine.
        let docs = parse_stream("\u{feff}a:\t\"x\\0y\"\nb: \u{85}\n").unwrap();
        assert_eq!(docs[0].value["a"], json!("x\u{0}y"), "{:?}", docs[0].value);
    }

    /// Nine levels of nine aliases would be 387 million values.
    #[test]
    fn alias_expansion_stops_at_the_document_budget() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse_stream(&text).unwrap_err();
        assert!(err.limit, "{err:?}");
        assert_eq!(err.line, 7, "where the budget ran out: {err:?}");
        assert!(
            err.message
                .contains("the document holds more than 1000000 values"),
            "{err:?}"
        );
        // Documents each under the budget still add up per file.
        let doc = |i| {
            format!(
                "---\nx{i}: &x [{}]\ny{i}: [{}]\n",
                vec!["1"; 1000].join(","),
                vec!["*x"; 700].join(",")
            )
        };
        let text: String = (0..3).map(doc).collect();
        let err = parse_stream(&text).unwrap_err();
        assert!(
            err.message
                .contains("the file holds more than 2000000 values"),
            "{err:?}"
        );
        // Aliases to long text count its bytes.
        let long = "x".repeat(1 << 20);
        let text = format!("a: &a {long}\nb: [{}]\n", ["*a"; 9].join(","));
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("8 MiB of text"), "{err:?}");
    }

    #[test]
    fn nesting_beyond_the_limit_is_cut_short_and_left_for_validation() {
        let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let docs = parse_stream(&format!("a: {}\n", deep(MAX_NESTING - 1))).unwrap();
        assert_eq!(limits::nesting(&docs[0].value, 1000), MAX_NESTING);
        for levels in [MAX_NESTING, 200] {
            let docs = parse_stream(&format!("a: {}\n", deep(levels))).unwrap();
            assert_eq!(
                limits::nesting(&docs[0].value, 1000),
                MAX_NESTING + 1,
                "{levels}"
            );
        }
        // Block style has no cap of its own; flow style stops at 255 levels
        // in the scanner, which says so in the same words.
        let docs = parse_stream(&format!("a:\n{}1\n", "- ".repeat(100_000))).unwrap();
        assert_eq!(limits::nesting(&docs[0].value, 1000), MAX_NESTING + 1);
        let err = parse_stream(&format!("a: {}\n", deep(100_000))).unwrap_err();
        assert!(err.limit, "{err:?}");
        assert_eq!(
            err.message,
            format!("the document is {}", limits::too_deep())
        );
        // Through aliases too: each line nests the one before.
        let mut text = String::from("l0: &l0 [1]\n");
        for i in 1..2000 {
            text.push_str(&format!("l{i}: &l{i} [*l{}]\n", i - 1));
        }
        let docs = parse_stream(&text).unwrap();
        assert_eq!(limits::nesting(&docs[0].value, 100_000), MAX_NESTING + 1);
    }

    #[test]
    fn too_many_documents() {
        let text = "a: 1\n---\n".repeat(MAX_DOCUMENTS + 1);
        let err = parse_stream(&text).unwrap_err();
        assert!(
            err.limit && err.message.contains("more than 10000 documents"),
            "{err:?}"
        );
        assert_eq!(
            parse_stream(&"a: 1\n---\n".repeat(MAX_DOCUMENTS))
                .unwrap()
                .len(),
            MAX_DOCUMENTS
        );
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
                message: "duplicate key 'a'".into(),
                limit: false,
            }
        );
    }
}
