//! Every manifest shown in README.md and docs/concepts.md is valid, and
//! docs/reference.md documents exactly the CRDs' spec fields, so the docs
//! cannot drift from the types and the validation layer.

use serde::Deserialize;
use std::path::Path;

/// The ```yaml blocks of a Markdown file, with the line each starts on.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match current.as_mut() {
            None if line.trim_start() == "```yaml" => current = Some((i + 2, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn check(doc: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let markdown = std::fs::read_to_string(&path).unwrap();
    let blocks = yaml_blocks(&markdown);
    assert!(!blocks.is_empty(), "{doc} has no yaml blocks");
    for (line, text) in blocks {
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{doc}:{line}: not YAML: {e}"));
            if let Err(errors) = kontinuum_api::validate::validate(&value) {
                let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                panic!("{doc}:{line}: invalid manifest: {}", shown.join("; "));
            }
        }
    }
}

#[test]
fn readme_manifests_are_valid() {
    check("README.md");
}

#[test]
fn concepts_manifests_are_valid() {
    check("docs/concepts.md");
}

/// The dotted paths of every field under a CRD's `spec`, e.g.
/// `retry.backoff.initial`; objects without declared properties (an FnRef's
/// `args`, a pod template) end a path.
fn spec_paths(crd_yaml: &str) -> Vec<String> {
    let crd: serde_json::Value = serde_yaml::from_str(crd_yaml).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), spec)];
    while let Some((prefix, schema)) = stack.pop() {
        let Some(props) = schema["properties"].as_object() else {
            out.push(prefix);
            continue;
        };
        for (name, child) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            stack.push((path, child));
        }
    }
    out
}

/// The field names in the first column of the table under `## {heading}`.
fn documented_fields(reference: &str, heading: &str) -> Vec<String> {
    let section = reference
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/reference.md has no section {heading}"));
    let mut fields = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or("");
        fields.extend(first_cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    fields
}

/// docs/reference.md's field tables and the CRDs name the same fields: a
/// field added to a type must be documented, and a documented one must exist.
#[test]
fn reference_documents_every_spec_field() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md");
    let reference = std::fs::read_to_string(path).unwrap();
    let crds = kontinuum_api::crds::crd_files().unwrap();
    for (file, heading) in [
        ("tasks.kontinuum.dev.yaml", "Task"),
        ("futures.kontinuum.dev.yaml", "HierarchicalFuture"),
        ("workerpools.kontinuum.dev.yaml", "WorkerPool"),
    ] {
        let yaml = &crds.iter().find(|(f, _)| *f == file).unwrap().1;
        let paths = spec_paths(yaml);
        let documented = documented_fields(&reference, heading);
        // A documented field covers the fields under it (`retry` covers
        // `retry.maxAttempts`).
        let covered = |p: &str| {
            documented
                .iter()
                .any(|d| p == d || p.starts_with(&format!("{d}.")))
        };
        let missing: Vec<_> = paths.iter().filter(|p| !covered(p)).collect();
        assert!(
            missing.is_empty(),
            "{heading}: not in docs/reference.md: {missing:?}"
        );
        let unknown: Vec<_> = documented
            .iter()
            .filter(|d| {
                !paths
                    .iter()
                    .any(|p| p == *d || p.starts_with(&format!("{d}.")))
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "{heading}: documented but not a field: {unknown:?}"
        );
    }
}
