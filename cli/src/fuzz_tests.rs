//! A fuzz target over manifest loading, run as an ordinary test: the
//! examples mutated with hostile but plausible edits (deep nesting, alias
//! bombs, huge numbers, control characters, unicode, duplicate keys, wrong
//! types, cut documents). For every input: no panic, bounded memory, and
//! anything accepted is accepted by an engine too, stored, and readable
//! after the store is reopened. `PROPTEST_CASES=N` runs more cases.

use crate::load;
use kontinuum_engine::{Engine, EngineConfig, EngineError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn examples() -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    texts
}

/// Values a careless or hostile author might write where a value goes.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            ".inf",
            "-.Inf",
            ".nan",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "0x",
            "0o9",
            "~",
            "''",
            "\"\\0\\x01\\u202e\"",
            "ünï©ødé 𝄞",
            "!!str 5",
            "!!int x",
            "!!float .inf",
            "[]",
            "{}",
            "[1, [2, [3]]]",
            "*nowhere",
            "&a [*a]",
            "<<: 1",
            "? complex\n: key",
        ])
        .prop_map(String::from),
        // Deep flow nesting, across the limit and the parser's own cap.
        (0usize..300).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (0usize..120).prop_map(|n| format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))),
        // An alias bomb in one flow sequence: `depth` levels of `width`.
        (1usize..10, 1usize..12).prop_map(|(width, depth)| {
            let mut items = vec![format!("&b0 [{}]", vec!["lol"; width].join(", "))];
            for i in 1..depth {
                items.push(format!(
                    "&b{i} [{}]",
                    vec![format!("*b{}", i - 1); width].join(", ")
                ));
            }
            format!("[{}]", items.join(", "))
        }),
        // Long numbers and long text.
        (1usize..2000).prop_map(|n| "9".repeat(n)),
        (1usize..2000).prop_map(|n| format!("1.{}e{}", "5".repeat(n % 50), n)),
        "\\PC{0,40}",
    ]
}

/// Characters YAML forbids or treats specially.
fn odd_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\0', '\u{1}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{feff}', '\u{fffe}',
        '\u{ffff}', '\u{202e}', '\t', '\r', '"', '\'', '&', '*', '!', '|', '>', '{', '}', '[', ']',
        ':', '#', '-', '?', '%', '@', '`',
    ])
}

#[derive(Clone, Debug)]
enum Edit {
    /// The value after the n-th `key:` becomes another one.
    Value(usize, String),
    Insert(usize, char),
    DuplicateLine(usize),
    DeleteLine(usize),
    Truncate(usize),
    /// Another example appended as a further document.
    Append(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), hostile_value()).prop_map(|(at, v)| Edit::Value(at, v)),
        2 => (any::<usize>(), odd_char()).prop_map(|(at, c)| Edit::Insert(at, c)),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
        1 => any::<usize>().prop_map(Edit::DeleteLine),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => any::<usize>().prop_map(Edit::Append),
    ]
}

fn apply(text: &str, edit: &Edit, examples: &[String]) -> String {
    let boundary = |at: usize| {
        let mut i = at % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let lines: Vec<&str> = text.lines().collect();
    let line = |at: usize| at % lines.len().max(1);
    match edit {
        Edit::Value(at, value) => {
            let keys: Vec<usize> = text.match_indices(": ").map(|(i, _)| i + 2).collect();
            if keys.is_empty() {
                return text.to_string();
            }
            let start = keys[at % keys.len()];
            let end = text[start..]
                .find(['\n', ',', '}'])
                .map_or(text.len(), |e| start + e);
            format!("{}{value}{}", &text[..start], &text[end..])
        }
        Edit::Insert(at, c) => {
            let i = boundary(*at);
            format!("{}{c}{}", &text[..i], &text[i..])
        }
        Edit::DuplicateLine(at) if !lines.is_empty() => {
            let mut out = lines.clone();
            out.insert(line(*at), lines[line(*at)]);
            out.join("\n") + "\n"
        }
        Edit::DeleteLine(at) if !lines.is_empty() => {
            let mut out = lines.clone();
            out.remove(line(*at));
            out.join("\n") + "\n"
        }
        Edit::Truncate(at) => text[..boundary(*at)].to_string(),
        Edit::Append(at) => format!("{text}\n---\n{}", examples[at % examples.len()]),
        _ => text.to_string(),
    }
}

/// The peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Opens the store again. The engine's timer thread may hold the last
/// reference for a moment after the drop, and with it sled's file lock.
fn reopen(store: &Path) -> Engine {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Engine::open(store, EngineConfig::default()) {
            Ok(engine) => return engine,
            Err(EngineError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Loads `text` as a manifest file next to the examples' data; whatever it
/// accepts must go into an engine and read back after a reopen.
fn check(text: &str, accepted: &AtomicUsize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(examples_dir().join("data"), dir.path().join("data")).unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, text).unwrap();
    let Ok(objects) = load::load(std::slice::from_ref(&file), load::Workers::InThisProcess) else {
        return Ok(());
    };
    accepted.fetch_add(1, Ordering::Relaxed);
    let submissions: Vec<_> = objects
        .iter()
        .filter_map(|o| o.submission.clone())
        .collect();
    let store = dir.path().join("store");
    let engine = Engine::open(&store, EngineConfig::default()).unwrap();
    let submitted = engine.submit(submissions);
    prop_assert!(
        submitted.is_ok(),
        "accepted by validation, refused by the engine: {submitted:?}"
    );
    drop(engine);
    let engine = reopen(&store);
    for object in &objects {
        let Some(id) = object.id() else { continue };
        let status = engine.status(id);
        prop_assert!(status.is_ok(), "{}: {status:?}", object.key);
    }
    Ok(())
}

/// 96 cases (a few seconds), or `PROPTEST_CASES`.
fn runner_cases() -> u32 {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default().cases
    } else {
        96
    }
}

#[test]
fn manifest_loading_survives_hostile_edits_of_the_examples() {
    let examples = examples();
    assert!(
        examples.len() >= 5,
        "examples/ holds the manifests to mutate"
    );
    let cases = Config::default().cases.min(4096);
    let config = Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            cases
        } else {
            96
        },
        failure_persistence: None,
        ..Config::default()
    };
    // The same cases on every run, so CI is repeatable; a failure prints
    // the input that caused it.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (0..examples.len(), prop::collection::vec(edit(), 1..4));
    let accepted = AtomicUsize::new(0);
    let result = runner.run(&strategy, |(which, edits)| {
        let mut text = examples[which].clone();
        for e in &edits {
            text = apply(&text, e, &examples);
        }
        check(&text, &accepted)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Edits that keep a manifest valid take the engine path: it must run.
    let accepted = accepted.into_inner();
    assert!(
        accepted * 10 >= runner_cases() as usize,
        "only {accepted} inputs were accepted"
    );
    let peak = peak_rss();
    assert!(peak < 1 << 30, "peak RSS {} MB", peak >> 20);
}
