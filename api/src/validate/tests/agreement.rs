//! The validator agrees with the CRDs it is derived from.

use super::*;
use crate::validate::schema_walk::{KNOWN_PATTERNS, SCHEMA_KEYWORDS};

fn crd_specs() -> Vec<&'static Value> {
    Kind::ALL
        .into_iter()
        .map(|k| k.spec_schema().expect("schema"))
        .collect()
}

fn visit(schema: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    f(obj);
    if let Some(Value::Object(props)) = obj.get("properties") {
        for p in props.values() {
            visit(p, f);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = obj.get(key) {
            visit(s, f);
        }
    }
}

#[test]
fn every_cel_message_has_a_rust_twin_and_vice_versa() {
    let mut found = Vec::new();
    for spec in crd_specs() {
        visit(spec, &mut |node| {
            if let Some(Value::Array(rules)) = node.get("x-kubernetes-validations") {
                for rule in rules {
                    // The duration rule's message is computed (it quotes
                    // the input); its twin is parse_duration, see below.
                    if rule["rule"] == crate::duration::DURATION_RULE {
                        assert_eq!(
                            rule["messageExpression"],
                            crate::duration::duration_message_expression()
                        );
                        continue;
                    }
                    found.push(rule["message"].as_str().unwrap_or_default().to_string());
                }
            }
        });
    }
    for message in &found {
        assert!(
            CEL_MESSAGES.contains(&message.as_str()),
            "CEL message without a Rust twin in validate/: {message}"
        );
    }
    for message in CEL_MESSAGES {
        assert!(
            found.iter().any(|m| m == message),
            "not in the CRDs: {message}"
        );
    }
    // And the generated YAML carries them verbatim.
    let yaml = crate::crds::crds_yaml().unwrap();
    for message in CEL_MESSAGES {
        let in_yaml = yaml.contains(message) || yaml.contains(&format!("'{message}'"));
        assert!(in_yaml, "not in crds_yaml(): {message}");
    }
}

#[test]
fn the_walker_understands_every_schema_keyword_and_pattern() {
    for spec in crd_specs() {
        visit(spec, &mut |node| {
            for key in node.keys() {
                assert!(
                    SCHEMA_KEYWORDS.contains(&key.as_str()),
                    "schema keyword the validator ignores: {key}"
                );
            }
            if let Some(Value::String(p)) = node.get("pattern") {
                assert!(KNOWN_PATTERNS.contains(&p.as_str()), "unknown pattern {p}");
            }
            if let Some(Value::String(f)) = node.get("format") {
                assert!(
                    ["date-time", "int32", "int64", "uint32", "uint64", "double"]
                        .contains(&f.as_str()),
                    "unknown format {f}"
                );
            }
        });
    }
    // The map source's property counts read as the sentence above.
    let future = Kind::Future.spec_schema().unwrap();
    let source = future.pointer("/properties/map/properties/source").unwrap();
    assert_eq!(source["minProperties"], Value::from(1));
    assert_eq!(source["maxProperties"], Value::from(1));
    // The function name pattern is in the FnRef schema.
    let call = Kind::Task.spec_schema().unwrap();
    assert_eq!(
        call.pointer("/properties/call/properties/function/pattern"),
        Some(&Value::from(FUNCTION_NAME_PATTERN))
    );
}

#[test]
fn function_name_checker_agrees_with_the_pattern() {
    // A small cross-check of is_function_name against the pattern's meaning.
    let alphabet = ['a', 'Z', '_', '.', '-', '0', ' ', '/', 'é'];
    for a in alphabet {
        for b in alphabet {
            let name: String = [a, b].iter().collect();
            let first_ok = a.is_ascii_alphabetic() || a == '_';
            let rest_ok = b.is_ascii_alphanumeric() || matches!(b, '_' | '.' | '-');
            assert_eq!(is_function_name(&name), first_ok && rest_ok, "{name:?}");
        }
    }
}

#[test]
fn the_rule_functions_minimums_are_the_schemas() {
    use crate::validate::rules::{MIN_ATTEMPTS, MIN_BACKOFF_FACTOR, MIN_FANOUT, MIN_SHARD_SIZE};
    let minimum = |kind: Kind, pointer: &str| -> f64 {
        kind.spec_schema()
            .and_then(|s| s.pointer(pointer))
            .and_then(|m| m.get("minimum"))
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("no minimum at {pointer}"))
    };
    for kind in [Kind::Task, Kind::Future] {
        let retry = "/properties/retry/properties";
        assert_eq!(
            minimum(kind, &format!("{retry}/maxAttempts")),
            f64::from(MIN_ATTEMPTS)
        );
        assert_eq!(
            minimum(kind, &format!("{retry}/backoff/properties/factor")),
            MIN_BACKOFF_FACTOR
        );
    }
    let map = "/properties/map/properties";
    assert_eq!(
        minimum(Kind::Future, &format!("{map}/shardSize")),
        MIN_SHARD_SIZE as f64
    );
    assert_eq!(
        minimum(Kind::Future, &format!("{map}/fanout")),
        f64::from(MIN_FANOUT)
    );
}
