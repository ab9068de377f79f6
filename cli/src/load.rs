//! Reads manifest files and validates every document before anything runs:
//! either all objects are good, or every problem is reported with its
//! `FILE:LINE` and the engine is never touched.

use crate::error::Diagnostic;
use crate::yaml::read::{Document, parse_stream};
use kontinuum_api::limits::MAX_MANIFEST_BYTES;
use kontinuum_api::validate::{Manifest, validate};
use kontinuum_engine::Submission;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One validated document, ready to submit.
#[derive(Debug, Clone)]
pub struct Object {
    /// `task/NAME`, `future/NAME` or `workerpool/NAME`: the engine's name.
    pub key: String,
    /// The document as written, for its apiVersion, kind and metadata.
    pub document: Value,
    /// The spec as submitted (defaults applied, paths made absolute).
    pub spec: Value,
    /// `None` for a WorkerPool, which runs nothing on the embedded engine.
    pub submission: Option<Submission>,
}

impl Object {
    pub fn pool(&self) -> Option<&str> {
        match &self.submission {
            Some(Submission::Task { spec, .. }) => Some(&spec.pool),
            Some(Submission::Future { spec, .. }) => Some(&spec.pool),
            None => None,
        }
    }
}

/// Loads every file; on any problem, returns all problems found.
pub fn load(files: &[PathBuf]) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    // Where each name was first defined, to reject a duplicate.
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in files {
        let file = path.display().to_string();
        let text = match read_manifest(path) {
            Ok(text) => text,
            Err((line, message)) => {
                problems.push(Diagnostic {
                    file,
                    line,
                    field: None,
                    message,
                });
                continue;
            }
        };
        let docs = match parse_stream(&text) {
            Ok(docs) => docs,
            Err(e) => {
                let message = if e.limit {
                    e.message
                } else {
                    format!("malformed YAML: {}", e.message)
                };
                problems.push(Diagnostic {
                    file,
                    line: Some(e.line),
                    field: None,
                    message,
                });
                continue;
            }
        };
        drop(text);
        if docs.is_empty() {
            problems.push(Diagnostic {
                file: file.clone(),
                line: Some(1),
                field: None,
                message: "no objects in this file".into(),
            });
        }
        let dir = manifest_dir(path);
        let first_problem = problems.len();
        for doc in docs {
            // An empty field is the document as a whole.
            let at = |field: &str, message: String| Diagnostic {
                file: file.clone(),
                line: Some(doc.line_of(field)),
                field: Some(field.to_string()).filter(|f| !f.is_empty()),
                message: without_field(field, message),
            };
            if !doc.problems.is_empty() {
                problems.extend(doc.problems.iter().map(|(f, m)| at(f, m.clone())));
                continue;
            }
            match object(&doc, &dir) {
                Ok(object) => {
                    let here = format!("{file}:{}", doc.line);
                    if let Some(first) = seen.get(&object.key) {
                        problems.push(at(
                            "metadata.name",
                            format!("{} is defined twice (first at {first})", object.key),
                        ));
                    } else {
                        seen.insert(object.key.clone(), here);
                        objects.push(object);
                    }
                }
                Err(errors) => problems.extend(errors.into_iter().map(|(f, m)| at(&f, m))),
            }
        }
        // In the order of the file (the sort is stable for equal lines).
        problems[first_problem..].sort_by_key(|p| p.line);
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

/// A manifest file as text, read with a cap so that a huge file (or
/// `/dev/zero`) is refused after [`MAX_MANIFEST_BYTES`] bytes, not after
/// filling memory. The error is (line, message).
fn read_manifest(path: &Path) -> Result<String, (Option<usize>, String)> {
    let cannot = |e: std::io::Error| (None, format!("cannot read: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err((
            None,
            format!(
                "the file is larger than {} MiB; split it into several files",
                MAX_MANIFEST_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        (
            Some(line),
            "malformed YAML: the file is not UTF-8 text (save it as UTF-8)".to_string(),
        )
    })
}

/// The printed line names the field already, so a message that starts by
/// naming it again ("spec.timeout: '5 minutes' is not ...") drops it.
fn without_field(field: &str, message: String) -> String {
    if field.is_empty() {
        return message;
    }
    match message.strip_prefix(field) {
        Some(rest) if rest.starts_with(": ") => rest[2..].to_string(),
        Some(rest) if rest.starts_with(' ') => rest[1..].to_string(),
        _ => message,
    }
}

/// The directory relative `lines` paths are resolved against.
fn manifest_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

type FieldErrors = Vec<(String, String)>;

fn object(doc: &Document, dir: &Path) -> Result<Object, FieldErrors> {
    let manifest = validate(&doc.value).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect::<FieldErrors>()
    })?;
    let name = |meta_name: Option<String>| meta_name.unwrap_or_default();
    let (key, spec, submission) = match manifest {
        Manifest::Task(task) => {
            let key = format!("task/{}", name(task.metadata.name));
            let spec = task.spec;
            let submission = Submission::Task {
                name: key.clone(),
                spec: spec.clone(),
            };
            (key, to_value(&spec), Some(submission))
        }
        Manifest::Future(future) => {
            let key = format!("future/{}", name(future.metadata.name));
            let mut spec = future.spec;
            resolve_lines(&mut spec, dir)?;
            let submission = Submission::Future {
                name: key.clone(),
                spec: spec.clone(),
            };
            (key, to_value(&spec), Some(submission))
        }
        Manifest::WorkerPool(pool) => {
            let key = format!("workerpool/{}", name(pool.metadata.name));
            (key, to_value(&pool.spec), None)
        }
    };
    Ok(Object {
        key,
        document: doc.value.clone(),
        spec,
        submission,
    })
}

fn to_value<T: serde::Serialize>(spec: &T) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// Makes a `lines` path absolute (relative to the manifest's directory) and
/// checks the file is there, so a typo is bad input rather than a failed run.
fn resolve_lines(
    spec: &mut kontinuum_api::HierarchicalFutureSpec,
    dir: &Path,
) -> Result<(), FieldErrors> {
    let Some(lines) = spec.map.as_mut().and_then(|m| m.source.lines.as_mut()) else {
        return Ok(());
    };
    let path = dir.join(&lines.path);
    if !path.is_file() {
        return Err(vec![(
            "spec.map.source.lines.path".into(),
            format!("no such file: {}", path.display()),
        )]);
    }
    lines.path = path.display().to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: &str = "apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: words}
spec:
  map:
    source: {lines: {path: data/text.txt}}
    function: {function: std.wordcount}
    reduce: merge
";

    #[test]
    fn lines_path_is_made_absolute_from_the_manifest_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/text.txt"), "a b\n").unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, WORDS).unwrap();
        let objects = load(std::slice::from_ref(&file)).unwrap();
        assert_eq!(objects[0].key, "future/words");
        let expected = dir.path().join("data/text.txt").display().to_string();
        assert_eq!(objects[0].spec["map"]["source"]["lines"]["path"], expected);
        let Some(Submission::Future { spec, .. }) = &objects[0].submission else {
            panic!("a future");
        };
        assert_eq!(
            spec.map
                .as_ref()
                .unwrap()
                .source
                .lines
                .as_ref()
                .unwrap()
                .path,
            expected
        );
    }

    #[test]
    fn problems_carry_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, format!("{WORDS}    shardSize: 0\n")).unwrap();
        let problems = load(std::slice::from_ref(&file)).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let f = file.display();
        assert_eq!(
            shown,
            [format!(
                "{f}:9: spec.map.shardSize: should be greater than or equal to 1 (found 0)"
            )]
        );
        // Once the document is valid, the missing file is the problem.
        std::fs::write(&file, WORDS).unwrap();
        let problems = load(std::slice::from_ref(&file)).unwrap_err();
        let missing = dir.path().join("data/text.txt");
        assert_eq!(
            problems[0].to_string(),
            format!(
                "{f}:6: spec.map.source.lines.path: no such file: {}",
                missing.display()
            )
        );
    }

    #[test]
    fn a_message_naming_its_field_is_not_repeated() {
        let m = |f: &str, msg: &str| without_field(f, msg.to_string());
        assert_eq!(m("spec.timeout", "spec.timeout: 'x' is bad"), "'x' is bad");
        assert_eq!(m("spec", "spec must set one"), "must set one");
        assert_eq!(m("spec", "spec.map is odd"), "spec.map is odd");
        assert_eq!(m("", "whole document"), "whole document");
    }
}
