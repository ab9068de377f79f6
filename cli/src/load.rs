//! Reads manifest files and validates every document before anything runs:
//! either all objects are good, or every problem is reported with its
//! `FILE:LINE` and the engine is never touched.

use crate::error::Diagnostic;
use crate::yaml::read::{Document, parse_stream};
use kontinuum_api::limits::MAX_MANIFEST_BYTES;
use kontinuum_api::validate::{Manifest, validate};
use kontinuum_api::{DEFAULT_NAMESPACE, ObjectId, ObjectKind};
use kontinuum_engine::Submission;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One validated document, ready to submit.
#[derive(Debug, Clone)]
pub struct Object {
    /// `task/NAME`, `future/NAME` or `workerpool/NAME`, as kubectl prints
    /// names.
    pub key: String,
    /// metadata.namespace, or "default".
    pub namespace: String,
    /// The document as written, for its apiVersion, kind and metadata.
    pub document: Value,
    /// The spec as submitted (defaults applied, paths made absolute).
    pub spec: Value,
    /// `None` for a WorkerPool, which runs nothing on the embedded engine.
    pub submission: Option<Submission>,
    /// Where the document's `spec.parentRef.name` is (FILE, LINE), if it
    /// has one.
    parent_at: Option<(String, usize)>,
}

impl Object {
    /// `NS/KIND/NAME` of a Task or future.
    pub fn id(&self) -> Option<&ObjectId> {
        self.submission.as_ref().map(|s| &s.id)
    }

    pub fn pool(&self) -> Option<&str> {
        self.submission.as_ref().map(Submission::pool)
    }
}

/// Whose filesystem a `lines` path names: the workers read the file, never
/// the engine; `run`'s workers are this process, so a missing file is bad
/// input there, while a server's workers may see files this machine does
/// not, and a missing file is theirs to report (the future fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    InThisProcess,
    Elsewhere,
}

/// Loads every file; on any problem, returns all problems found.
pub fn load(files: &[PathBuf], workers: Workers) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    // Where each namespace/kind/name was first defined, to reject a duplicate.
    let mut seen: HashMap<(String, String), String> = HashMap::new();
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
            match object(&doc, &dir, workers) {
                Ok(mut object) => {
                    let here = format!("{file}:{}", doc.line);
                    let unique = (object.namespace.clone(), object.key.clone());
                    if let Some(first) = seen.get(&unique) {
                        problems.push(at(
                            "metadata.name",
                            format!("{} is defined twice (first at {first})", object.key),
                        ));
                    } else {
                        seen.insert(unique, here);
                        if doc.value.pointer("/spec/parentRef/name").is_some() {
                            let line = doc.line_of("spec.parentRef.name");
                            object.parent_at = Some((file.clone(), line));
                        }
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
        problems.extend(resolve_parents(&mut objects));
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

/// `spec.parentRef` names a HierarchicalFuture among the submitted objects,
/// in the same namespace: it becomes the submission's parent.
fn resolve_parents(objects: &mut [Object]) -> Vec<Diagnostic> {
    let futures: HashMap<ObjectId, ()> = objects
        .iter()
        .filter_map(Object::id)
        .filter(|id| id.kind == ObjectKind::Future)
        .map(|id| (id.clone(), ()))
        .collect();
    let mut problems = Vec::new();
    for object in objects.iter_mut() {
        let Some(submission) = object.submission.as_mut() else {
            continue;
        };
        let Some(parent) = submission.parent_id() else {
            continue;
        };
        if futures.contains_key(&parent) {
            submission.parent = Some(parent);
            continue;
        }
        let (file, line) = object.parent_at.clone().unwrap_or_default();
        problems.push(Diagnostic {
            file,
            line: Some(line),
            field: Some("spec.parentRef.name".into()),
            message: format!(
                "no HierarchicalFuture '{}' in namespace '{}' among the submitted objects",
                parent.name, parent.namespace
            ),
        });
    }
    if problems.is_empty()
        && let Err(cycle) = submit_order(objects)
    {
        let object = &objects[cycle];
        let (file, line) = object.parent_at.clone().unwrap_or_default();
        problems.push(Diagnostic {
            file,
            line: Some(line),
            field: Some("spec.parentRef.name".into()),
            message: format!("{} is its own ancestor through parentRef", object.key),
        });
    }
    problems
}

/// The submissions with every parent before its children (the engine
/// needs a parent first); `Err(i)` when object `i` is in a parentRef cycle.
pub fn submit_order(objects: &[Object]) -> Result<Vec<Submission>, usize> {
    let index: HashMap<&ObjectId, usize> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.id().map(|id| (id, i)))
        .collect();
    // 0: not placed, 1: being placed (on the path), 2: placed.
    let mut mark = vec![0u8; objects.len()];
    let mut order = Vec::with_capacity(objects.len());
    fn place(
        i: usize,
        objects: &[Object],
        index: &HashMap<&ObjectId, usize>,
        mark: &mut [u8],
        order: &mut Vec<Submission>,
    ) -> Result<(), usize> {
        match mark[i] {
            2 => return Ok(()),
            1 => return Err(i),
            _ => {}
        }
        mark[i] = 1;
        let Some(submission) = &objects[i].submission else {
            mark[i] = 2;
            return Ok(());
        };
        if let Some(&p) = submission.parent.as_ref().and_then(|p| index.get(p)) {
            place(p, objects, index, mark, order)?;
        }
        mark[i] = 2;
        order.push(submission.clone());
        Ok(())
    }
    for i in 0..objects.len() {
        place(i, objects, &index, &mut mark, &mut order)?;
    }
    Ok(order)
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

fn object(doc: &Document, dir: &Path, workers: Workers) -> Result<Object, FieldErrors> {
    let manifest = validate(&doc.value).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect::<FieldErrors>()
    })?;
    let name = |meta_name: Option<String>| meta_name.unwrap_or_default();
    let namespace = |ns: Option<String>| ns.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let (namespace, spec, submission) = match manifest {
        Manifest::Task(task) => {
            let ns = namespace(task.metadata.namespace);
            let spec = task.spec;
            let submission = Submission::task(&ns, &name(task.metadata.name), spec.clone());
            (ns, to_value(&spec), Ok(submission))
        }
        Manifest::Future(future) => {
            let ns = namespace(future.metadata.namespace);
            let mut spec = future.spec;
            resolve_lines(&mut spec, dir, workers)?;
            let submission = Submission::future(&ns, &name(future.metadata.name), spec.clone());
            (ns, to_value(&spec), Ok(submission))
        }
        Manifest::WorkerPool(pool) => {
            let key = format!("workerpool/{}", name(pool.metadata.name));
            (
                namespace(pool.metadata.namespace),
                to_value(&pool.spec),
                Err(key),
            )
        }
    };
    let (key, submission) = match submission {
        Ok(s) => (s.id.short(), Some(s)),
        Err(key) => (key, None),
    };
    Ok(Object {
        key,
        namespace,
        document: doc.value.clone(),
        spec,
        submission,
        parent_at: None,
    })
}

fn to_value<T: serde::Serialize>(spec: &T) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// Makes a `lines` path absolute (relative to the manifest's directory) and,
/// when this process's workers read it, checks the file is there, so a typo
/// is bad input rather than a failed run.
fn resolve_lines(
    spec: &mut kontinuum_api::HierarchicalFutureSpec,
    dir: &Path,
    workers: Workers,
) -> Result<(), FieldErrors> {
    let Some(lines) = spec.map.as_mut().and_then(|m| m.source.lines.as_mut()) else {
        return Ok(());
    };
    let path = dir.join(&lines.path);
    if workers == Workers::InThisProcess && !path.is_file() {
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
        let objects = load(std::slice::from_ref(&file), Workers::InThisProcess).unwrap();
        assert_eq!(objects[0].key, "future/words");
        let expected = dir.path().join("data/text.txt").display().to_string();
        assert_eq!(objects[0].spec["map"]["source"]["lines"]["path"], expected);
        let Some(kontinuum_engine::SubmissionBody::Future(spec)) =
            objects[0].submission.as_ref().map(|s| &s.body)
        else {
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
        let problems = load(std::slice::from_ref(&file), Workers::InThisProcess).unwrap_err();
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
        let problems = load(std::slice::from_ref(&file), Workers::InThisProcess).unwrap_err();
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
    fn a_file_for_workers_elsewhere_is_theirs_to_find() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, WORDS).unwrap();
        let objects = load(std::slice::from_ref(&file), Workers::Elsewhere).unwrap();
        let expected = dir.path().join("data/text.txt").display().to_string();
        assert_eq!(objects[0].spec["map"]["source"]["lines"]["path"], expected);
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
