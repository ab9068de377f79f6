//! Printing objects the way kubectl does: `-o json` / `-o yaml` print one
//! object, or a `v1 List` of several; `-o text` prints a compact table.

use crate::yaml::write::to_yaml;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

/// The printed text for `objects` (each a full object: apiVersion, kind,
/// metadata, spec, status), ending in a newline.
pub fn render(objects: &[Value], format: Format) -> String {
    match format {
        Format::Json => json_text(&envelope(objects)),
        Format::Yaml => to_yaml(&envelope(objects)),
        Format::Text => table(objects),
    }
}

/// Pretty JSON with kubectl's four-space indent.
fn json_text(value: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    // Writing a Value into memory cannot fail (all keys are strings).
    let _ = value.serialize(&mut ser);
    buf.push(b'\n');
    String::from_utf8_lossy(&buf).into_owned()
}

/// kubectl's convention: a single object alone, several in a List.
fn envelope(objects: &[Value]) -> Value {
    match objects {
        [one] => one.clone(),
        many => json!({"apiVersion": "v1", "kind": "List", "items": many}),
    }
}

/// The object's `kind/name` as the table prints it.
pub fn display_name(object: &Value) -> String {
    let kind = match object["kind"].as_str() {
        Some("HierarchicalFuture") => "future",
        Some("Task") => "task",
        Some("WorkerPool") => "workerpool",
        _ => "object",
    };
    format!(
        "{kind}/{}",
        object["metadata"]["name"].as_str().unwrap_or("")
    )
}

const RESULT_WIDTH: usize = 48;
const MESSAGE_WIDTH: usize = 200;

fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"]
        .as_str()
        .unwrap_or(kontinuum_api::DEFAULT_NAMESPACE)
}

/// kubectl's columns; NAMESPACE first when the objects span several.
fn table(objects: &[Value]) -> String {
    let spread = objects
        .iter()
        .map(namespace_of)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut header = vec!["NAME", "PHASE", "PROGRESS", "RESULT"];
    if spread {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let mut notes = Vec::new();
    for object in objects {
        let status = &object["status"];
        let name = display_name(object);
        let mut row = vec![
            name.clone(),
            status["phase"].as_str().unwrap_or("-").to_string(),
            progress(status),
            result(status),
        ];
        if spread {
            row.insert(0, namespace_of(object).to_string());
        }
        rows.push(row);
        notes.extend(messages(status).into_iter().map(|m| format!("{name}: {m}")));
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

fn progress(status: &Value) -> String {
    let p = &status["progress"];
    match (p["done"].as_u64(), p["total"].as_u64()) {
        (Some(done), Some(total)) => {
            format!("{}% {done}/{total}", p["percent"].as_u64().unwrap_or(0))
        }
        _ => match status["attempts"].as_u64() {
            Some(n) if n > 0 => format!("attempts {n}"),
            _ => "-".into(),
        },
    }
}

fn result(status: &Value) -> String {
    if let Some(merged) = status["mergedInto"].as_str() {
        return truncate(&format!("merged into {merged}"), RESULT_WIDTH);
    }
    match &status["result"] {
        Value::Null if status.get("resultRef").is_some() => "(over 4 KiB: get KIND/NAME)".into(),
        Value::Null if status.get("result").is_none() => "-".into(),
        Value::String(s) => truncate(s, RESULT_WIDTH),
        other => truncate(&other.to_string(), RESULT_WIDTH),
    }
}

/// What went wrong, one line each: a task's error, a future's failures.
fn messages(status: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Object(error)) = status.get("error") {
        out.push(error_line(error));
    }
    if let Some(Value::Array(failures)) = status.get("failures") {
        for f in failures {
            let path = f["path"].as_str().unwrap_or("?");
            let message = f["message"].as_str().unwrap_or("");
            out.push(truncate(
                &format!("failed at {path}: {message}"),
                MESSAGE_WIDTH,
            ));
        }
    }
    out
}

fn error_line(error: &Map<String, Value>) -> String {
    let kind = error.get("kind").and_then(Value::as_str).unwrap_or("error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let attempt = error.get("attempt").and_then(Value::as_u64).unwrap_or(0);
    let text = if attempt > 0 {
        format!("{kind} error (attempt {attempt}): {message}")
    } else {
        format!("{kind} error: {message}")
    };
    truncate(&text, MESSAGE_WIDTH)
}

/// One line, at most `width` characters, with `…` when cut.
fn truncate(s: &str, width: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= width {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(name: &str, status: Value) -> Value {
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
               "metadata": {"name": name}, "spec": {}, "status": status})
    }

    #[test]
    fn one_object_alone_several_in_a_list() {
        let a = future("a", json!({"phase": "Succeeded"}));
        let one: Value =
            serde_json::from_str(&render(std::slice::from_ref(&a), Format::Json)).unwrap();
        assert_eq!(one, a);
        let two: Value =
            serde_json::from_str(&render(&[a.clone(), a.clone()], Format::Json)).unwrap();
        assert_eq!(two["kind"], "List");
        assert_eq!(two["apiVersion"], "v1");
        assert_eq!(two["items"][1], a);
        assert!(
            render(&[a.clone(), a], Format::Yaml)
                .starts_with("apiVersion: v1\nkind: List\nitems:\n- ")
        );
    }

    #[test]
    fn json_keeps_huge_integers_exact() {
        let n: Value = serde_json::from_str("333333283333335000000").unwrap();
        let text = render(&[future("sq", json!({"result": n}))], Format::Json);
        assert!(text.contains("\"result\": 333333283333335000000"), "{text}");
    }

    #[test]
    fn text_table_and_messages() {
        let sq = future(
            "squares",
            json!({"phase": "Failed", "progress": {"done": 5, "total": 10, "percent": 50},
                   "result": "x".repeat(100),
                   "failures": [{"path": "/3", "message": "boom"}]}),
        );
        let task = json!({"kind": "Task", "metadata": {"name": "sum"},
            "status": {"phase": "Failed", "attempts": 3,
                       "error": {"message": "bad\nthing", "kind": "permanent", "attempt": 3}}});
        let text = render(&[sq, task], Format::Text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "PHASE", "PROGRESS", "RESULT"]
        );
        assert!(
            lines[1].starts_with("future/squares   Failed   50% 5/10     xxx"),
            "{text}"
        );
        assert!(
            lines[1].ends_with('…') && lines[1].chars().count() < 100,
            "{text}"
        );
        assert!(
            lines[2].starts_with("task/sum         Failed   attempts 3   -"),
            "{text}"
        );
        assert_eq!(lines[3], "future/squares: failed at /3: boom");
        assert_eq!(lines[4], "task/sum: permanent error (attempt 3): bad thing");
    }
}
