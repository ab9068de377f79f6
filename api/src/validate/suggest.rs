//! Unknown fields, named with the closest known one ("did you mean
//! shardSize?") or the list of fields the place has.

use super::field::{FieldError, child};
use serde_json::{Map, Value};

pub(super) fn unknown_fields(
    obj: &Map<String, Value>,
    path: &str,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(unknown_field(path, key, known.iter().copied()));
        }
    }
}

pub(super) fn unknown_field<'a>(
    path: &str,
    key: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> FieldError {
    let field = child(path, key);
    let mut message = format!("unknown field \"{field}\"");
    if let Some(s) = closest(key, known.clone()) {
        message.push_str(&format!(": did you mean {s}?"));
    } else {
        let list: Vec<&str> = known.into_iter().collect();
        if !list.is_empty() {
            let here = if path.is_empty() { "here" } else { path };
            message.push_str(&format!(" ({here} has {})", list.join(", ")));
        }
    }
    FieldError::new(field, message)
}

/// The candidate closest to `word`: the same ignoring case, or at most two
/// edits away.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_ascii_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &c.to_ascii_lowercase())
        };
        if d <= 2 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
