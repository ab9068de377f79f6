//! std.wordcount: `{item: "a line"}` → `{word: count, ...}`.
//!
//! Words are the whitespace-separated pieces of the line, lowercased, with
//! the characters that are neither letters nor digits trimmed from both ends
//! (`"Hello,"` → `hello`, `"(don't)"` → `don't`, `"--"` → no word). Keys
//! appear in order of first occurrence.

use super::as_str;
use crate::args::Args;
use crate::ctx::Ctx;
use crate::invocation::FnResult;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(super) fn wordcount(_: &Ctx, args: Args<'_>) -> FnResult {
    let line = as_str("item", args.require("item")?)?;
    // Count in plain integers, then build the JSON object once in
    // first-seen order (JSON numbers are strings inside, slow to bump).
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for raw in line.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        match counts.get_mut(&word) {
            Some(n) => *n += 1,
            None => {
                counts.insert(word.clone(), 1);
                order.push(word);
            }
        }
    }
    let object: Map<String, Value> = order
        .into_iter()
        .map(|w| {
            let n = counts.get(&w).copied().unwrap_or(0);
            (w, Value::from(n))
        })
        .collect();
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use crate::args::Args;
    use crate::ctx::Ctx;
    use crate::std_fns::std_registry;
    use serde_json::json;
    use std::sync::Arc;

    fn count(args: serde_json::Value) -> crate::invocation::FnResult {
        let ctx = Ctx::detached(Arc::new(std_registry()));
        let map = args.as_object().cloned().unwrap();
        futures::executor::block_on(ctx.invoke("std.wordcount", Args::new(&map)).resolve())
    }

    #[test]
    fn counts_lowercased_trimmed_words() {
        let got = count(json!({"item": "The cat, the HAT -- and (don't) the end."})).unwrap();
        assert_eq!(
            got,
            json!({"the": 3, "cat": 1, "hat": 1, "and": 1, "don't": 1, "end": 1})
        );
        assert_eq!(count(json!({"item": "   "})).unwrap(), json!({}));
        assert_eq!(
            count(json!({"item": "Ünïcode ünïcode"})).unwrap(),
            json!({"ünïcode": 2})
        );
    }

    #[test]
    fn needs_a_string_item() {
        let e = count(json!({"item": 3})).unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "argument 'item': expected a string, got a number"
        );
        assert_eq!(
            count(json!({})).unwrap_err().message,
            "missing argument 'item'"
        );
    }
}
