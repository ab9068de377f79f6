//! Bad input is rejected before anything runs: exit 2, `FILE:LINE: FIELD:
//! MESSAGE` on stderr, the store untouched, and no side effect of the valid
//! documents submitted alongside the bad one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A valid Task that, if it ever ran, would create `marker`.
fn side_effect_task(marker: &Path) -> String {
    format!(
        "apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {{name: side-effect}}
spec:
  call:
    function: std.exec
    args: {{command: [touch, {}]}}
",
        marker.display()
    )
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    file: PathBuf,
    /// Removed when the outcome is dropped.
    _dir: tempfile::TempDir,
}

/// Runs `kontinuum run` on a file holding a valid side-effect Task followed
/// by `bad`, and checks that nothing ran.
fn run_bad(bad: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let data = dir.path().join("store");
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, format!("{}---\n{bad}", side_effect_task(&marker))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["run", "-o", "json", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.stdout.is_empty(), "nothing is printed on stdout");
    assert!(
        !marker.exists(),
        "the valid task ran although the input was bad"
    );
    if data.exists() {
        let engine =
            kontinuum_engine::Engine::open(&data, kontinuum_engine::EngineConfig::default())
                .unwrap();
        assert!(
            engine.objects().unwrap().is_empty(),
            "objects were submitted"
        );
    }
    Outcome {
        code: out.status.code(),
        stderr,
        file,
        _dir: dir,
    }
}

/// The side-effect task takes lines 1-7 and `---` line 8: the bad document
/// starts on line 9.
const FIRST: usize = 9;

/// Exit 2 and a line `FILE:LINE: FIELD: ...` whose message contains `words`.
fn expect(bad: &str, line: usize, field: &str, words: &str) {
    let out = run_bad(bad);
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    let prefix = format!("{}:{line}: {field}: ", out.file.display());
    let hit = out.stderr.lines().find(|l| l.starts_with(&prefix));
    let Some(hit) = hit else {
        panic!("no line starting with {prefix:?} in:\n{}", out.stderr);
    };
    assert!(hit.contains(words), "{hit:?} should mention {words:?}");
}

const FUTURE: &str = "apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: bad}
spec:
  map:
    source: {range: {start: 0, end: 10}}
    function: {function: std.square}
";

#[test]
fn malformed_yaml() {
    let out = run_bad(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nspec:\n  call: {function: std.sum\n  pool: x\n",
    );
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    let prefix = format!("{}:", out.file.display());
    let hit = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains("malformed YAML"))
        .unwrap_or_else(|| panic!("no file:line in {}", out.stderr));
    let line: usize = hit[prefix.len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((FIRST + 3..=FIRST + 5).contains(&line), "{hit}");
}

#[test]
fn unknown_kind() {
    expect(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: CronJob\nmetadata: {name: x}\nspec: {}\n",
        FIRST + 1,
        "kind",
        "CronJob",
    );
}

#[test]
fn wrong_api_version() {
    expect(
        "apiVersion: kontinuum.dev/v1\nkind: Task\nmetadata: {name: x}\nspec:\n  call: {function: std.sum}\n",
        FIRST,
        "apiVersion",
        "kontinuum.dev/v1alpha1",
    );
}

#[test]
fn two_body_kinds_in_one_future() {
    expect(
        &format!("{FUTURE}  parallel:\n  - {{function: std.echo}}\n"),
        FIRST + 3,
        "spec",
        "exactly one",
    );
}

#[test]
fn shard_size_zero() {
    expect(
        &format!("{FUTURE}    shardSize: 0\n"),
        FIRST + 7,
        "spec.map.shardSize",
        "1",
    );
}

#[test]
fn fanout_one() {
    expect(
        &format!("{FUTURE}    fanout: 1\n"),
        FIRST + 7,
        "spec.map.fanout",
        "2",
    );
}

#[test]
fn unknown_reducer() {
    expect(
        &format!("{FUTURE}    reduce: average\n"),
        FIRST + 7,
        "spec.map.reduce",
        "average",
    );
}

#[test]
fn bad_duration() {
    expect(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: x}\nspec:\n  call: {function: std.sum}\n  timeout: 5 minutes\n",
        FIRST + 5,
        "spec.timeout",
        "5 minutes",
    );
}

#[test]
fn argument_bound_twice() {
    expect(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: x}\nspec:\n  call: {function: std.sum, args: {a: 1, b: 2}}\n  onSuccess:\n    function: std.log\n    args:\n      result: 3\n",
        FIRST + 8,
        "spec.onSuccess.args.result",
        "already bound",
    );
}

#[test]
fn a_missing_lines_file() {
    expect(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: x}\nspec:\n  map:\n    source:\n      lines: {path: no/such/file.txt}\n    function: {function: std.wordcount}\n",
        FIRST + 6,
        "spec.map.source.lines.path",
        "no such file",
    );
}

#[test]
fn a_name_defined_twice() {
    let task = "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata:\n  name: twice\nspec:\n  call: {function: std.sum}\n";
    expect(
        &format!("{task}---\n{task}"),
        FIRST + 10,
        "metadata.name",
        "defined twice",
    );
}

#[test]
fn a_parent_ref_to_nothing_submitted() {
    expect(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: orphan}\nspec:\n  call: {function: std.sum}\n  parentRef:\n    name: nowhere\n",
        FIRST + 6,
        "spec.parentRef.name",
        "no HierarchicalFuture 'nowhere' in namespace 'default' among the submitted objects",
    );
}

#[test]
fn a_parent_ref_into_another_namespace() {
    let parent = "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: p, namespace: a}\nspec:\n  call: {function: std.sum}\n";
    let child = "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: c, namespace: b}\nspec:\n  call: {function: std.sum}\n  parentRef: {name: p}\n";
    expect(
        &format!("{parent}---\n{child}"),
        FIRST + 11,
        "spec.parentRef.name",
        "in namespace 'b'",
    );
}

#[test]
fn a_parent_ref_cycle() {
    let future = |name: &str, parent: &str| {
        format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: {name}}}\nspec:\n  call: {{function: std.sum}}\n  parentRef: {{name: {parent}}}\n"
        )
    };
    let out = run_bad(&format!("{}---\n{}", future("x", "y"), future("y", "x")));
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("its own ancestor through parentRef"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_problem_is_reported() {
    let out = run_bad(&format!(
        "{FUTURE}    shardSize: 0\n---\n{FUTURE}    fanout: 1\n"
    ));
    assert_eq!(out.code, Some(2));
    let file = out.file.display().to_string();
    assert!(
        out.stderr
            .contains(&format!("{file}:{}: spec.map.shardSize: ", FIRST + 7)),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("{file}:{}: spec.map.fanout: ", FIRST + 16)),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreadable_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["run", "/no/such/manifest.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/no/such/manifest.yaml: cannot read"),
        "{stderr}"
    );
}
