//! Every manifest shown in README.md and docs/concepts.md is valid, so the
//! docs cannot drift from the CRDs and the validation layer.

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
