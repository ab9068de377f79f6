//! Runs every manifest in examples/ with `kontinuum run -o json` and checks
//! its exact result and exit code. A new example must get a case here.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs one example; returns (exit code, objects by `kind/name`).
fn run(example: &str) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["run", "-o", "json"])
        .arg(examples_dir().join(example))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let printed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{example}: stdout is not JSON ({e}); stderr:\n{stderr}"));
    let objects = match printed["kind"].as_str() {
        Some("List") => {
            assert_eq!(printed["apiVersion"], "v1");
            printed["items"].as_array().cloned().unwrap_or_default()
        }
        _ => vec![printed],
    };
    for o in &objects {
        assert_eq!(o["apiVersion"], "kontinuum.dev/v1alpha1", "{o}");
        assert!(
            o["metadata"]["name"].is_string() && o["spec"].is_object(),
            "{o}"
        );
    }
    (out.status.code().unwrap_or(-1), objects)
}

fn phase(o: &Value) -> &str {
    o["status"]["phase"].as_str().unwrap_or("")
}

fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no object {name}"))
}

#[test]
fn every_example_has_a_case() {
    let tested = [
        "debounce.yaml",
        "exclusive.yaml",
        "exec-python.yaml",
        "failure-exceeded.yaml",
        "failure-tolerated.yaml",
        "parallel-sequence.yaml",
        "parent-ref.yaml",
        "squares.yaml",
        "sum.yaml",
        "wordcount.yaml",
    ];
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    found.sort();
    assert_eq!(found, tested);
}

#[test]
fn sum() {
    let (code, objects) = run("sum.yaml");
    assert_eq!(code, 0);
    let task = &objects[0];
    assert_eq!(phase(task), "Succeeded", "{task}");
    assert_eq!(task["status"]["result"], json!(9));
    assert_eq!(
        task["status"]["continuation"], "sum-4-5.on-success",
        "{task}"
    );
}

#[test]
fn squares() {
    let (code, objects) = run("squares.yaml");
    assert_eq!(code, 0);
    let f = &objects[0];
    assert_eq!(phase(f), "Succeeded", "{f}");
    assert_eq!(f["status"]["result"].to_string(), "333333283333335000000");
    assert_eq!(f["status"]["progress"]["done"], json!(10_000_000));
    assert_eq!(f["status"]["progress"]["total"], json!(10_000_000));
}

#[test]
fn squares_as_yaml_prints_the_exact_integer() {
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["run", "-o", "yaml"])
        .arg(examples_dir().join("squares.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  result: 333333283333335000000\n"),
        "a plain YAML integer:\n{text}"
    );
}

/// std.wordcount's rule: whitespace-separated, lowercased, trimmed of
/// characters that are neither letters nor digits.
fn count_words(text: &str) -> Value {
    let mut counts = serde_json::Map::new();
    for raw in text.split_whitespace() {
        let word = raw
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !word.is_empty() {
            let n = counts.get(&word).and_then(Value::as_u64).unwrap_or(0);
            counts.insert(word, json!(n + 1));
        }
    }
    Value::Object(counts)
}

#[test]
fn wordcount() {
    let (code, objects) = run("wordcount.yaml");
    assert_eq!(code, 0);
    let f = &objects[0];
    assert_eq!(phase(f), "Succeeded", "{f}");
    let text = std::fs::read_to_string(examples_dir().join("data/rhyme.txt")).unwrap();
    let expected = count_words(&text);
    assert_eq!(f["status"]["result"], expected);
    assert_eq!(
        f["status"]["result"]["the"],
        json!(256),
        "a spot check by hand"
    );
    let path = f["spec"]["map"]["source"]["lines"]["path"]
        .as_str()
        .unwrap();
    assert!(
        Path::new(path).is_absolute(),
        "lines.path is made absolute: {path}"
    );
}

#[test]
fn exec_python() {
    let (code, objects) = run("exec-python.yaml");
    assert_eq!(code, 0, "{objects:?}");
    assert_eq!(
        objects[0]["status"]["result"],
        json!({"total": 31, "count": 8})
    );
}

#[test]
fn parallel_and_sequence() {
    let (code, objects) = run("parallel-sequence.yaml");
    assert_eq!(code, 0, "{objects:?}");
    let fan_out = named(&objects, "fan-out");
    assert_eq!(phase(fan_out), "Succeeded");
    assert_eq!(
        fan_out["status"]["result"],
        json!([3, 144, 60, {"greeting": "hello"}])
    );
    let pipeline = named(&objects, "pipeline");
    assert_eq!(phase(pipeline), "Succeeded");
    assert_eq!(
        pipeline["status"]["result"],
        json!([5, {"step": "two", "previous": [5]}, {"step": "three", "previous": [5, {"step": "two", "previous": [5]}]}])
    );
}

#[test]
fn parent_ref() {
    let (code, objects) = run("parent-ref.yaml");
    assert_eq!(code, 0, "{objects:?}");
    let report = named(&objects, "report");
    assert_eq!(phase(report), "Succeeded", "{report}");
    // extra (42) and small-squares (285) joined before the parallel body ran.
    assert_eq!(report["status"]["result"], json!([42, 285, 3]));
    assert_eq!(report["status"]["progress"]["doneTotal"], "12/12");
    assert_eq!(report["status"]["continuation"], "report.on-success");
    for name in ["extra", "small-squares"] {
        assert_eq!(phase(named(&objects, name)), "Succeeded", "{name}");
    }
}

#[test]
fn failure_tolerated() {
    let (code, objects) = run("failure-tolerated.yaml");
    assert_eq!(code, 0, "{objects:?}");
    let f = &objects[0];
    assert_eq!(phase(f), "Succeeded", "{f}");
    assert_eq!(f["status"]["counts"]["failed"], json!(1), "{f}");
    let failures = f["status"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]["message"]
            .as_str()
            .unwrap()
            .contains("disk on fire")
    );
}

#[test]
fn failure_exceeded() {
    let (code, objects) = run("failure-exceeded.yaml");
    assert_eq!(code, 1, "{objects:?}");
    let f = &objects[0];
    assert_eq!(phase(f), "Failed", "{f}");
    assert!(
        f["status"]["failures"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{f}"
    );
}

#[test]
fn debounce() {
    let (code, objects) = run("debounce.yaml");
    assert_eq!(code, 0, "{objects:?}");
    let phases: Vec<&str> = objects[..3].iter().map(phase).collect();
    assert_eq!(
        phases.iter().filter(|p| **p == "Succeeded").count(),
        1,
        "{phases:?}"
    );
    assert_eq!(
        phases.iter().filter(|p| **p == "Merged").count(),
        2,
        "{phases:?}"
    );
    let run = objects[..3]
        .iter()
        .find(|o| phase(o) == "Succeeded")
        .unwrap();
    assert_eq!(run["status"]["result"], json!({"personId": "1234"}));
    assert_eq!(phase(&objects[3]), "Succeeded");
    assert_eq!(objects[3]["status"]["result"], json!({"personId": "5432"}));
}

#[test]
fn exclusive() {
    let (code, objects) = run("exclusive.yaml");
    assert_eq!(code, 0, "{objects:?}");
    let phases: Vec<&str> = objects.iter().map(phase).collect();
    assert_eq!(
        phases.iter().filter(|p| **p == "Succeeded").count(),
        2,
        "{phases:?}"
    );
    assert_eq!(
        phases.iter().filter(|p| **p == "Merged").count(),
        2,
        "{phases:?}"
    );
}
