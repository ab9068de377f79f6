//! Maps over files: the engine never opens the file; a worker's plan sizes
//! the map, and the worker's errors end the future with its message.

mod common;

use common::*;
use kontinuum_api::Phase;
use kontinuum_api::work::{Completion, Outcome, Slice, SourceRef, Work};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// A file of `n` lines "line NN" (8 bytes each with the newline, for NN < 100).
fn lines_file(dir: &std::path::Path, n: usize) -> String {
    let path = dir.join("lines.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..n {
        writeln!(f, "line {i:02}").unwrap();
    }
    path.display().to_string()
}

fn lines_future(name: &str, path: &str, shard: u64) -> kontinuum_engine::Submission {
    future(
        name,
        &format!(
            "{{map: {{source: {{lines: {{path: {path}}}}}, function: {{function: t.len}}, shardSize: {shard}, fanout: 4, reduce: sum}}}}"
        ),
    )
}

fn answer(engine: &kontinuum_engine::Engine, token: u64, outcome: Outcome) {
    engine
        .complete(vec![Completion { token, outcome }])
        .unwrap();
}

#[test]
fn the_engine_accepts_a_path_it_cannot_see_and_asks_a_worker_to_plan_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    // The file does not exist where the engine runs: that is the worker's to find.
    engine
        .submit(vec![lines_future("m", "/only/in/the/workers/pod.txt", 10)])
        .expect("the engine must not read the file at submit");
    let leases = lease_now(&engine, 8);
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(
        leases[0].work,
        Work::Plan {
            source: SourceRef::Lines {
                path: "/only/in/the/workers/pod.txt".into()
            }
        }
    );
    assert_eq!(
        engine.tree(&fid("m"), 10).unwrap().root.kind,
        "plan",
        "kontinuum tree names the node"
    );
}

#[test]
fn a_plan_sizes_the_map_and_every_line_is_mapped_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lines_file(dir.path(), 100);
    let engine = open(&dir.path().join("store"));
    engine.submit(vec![lines_future("m", &path, 10)]).unwrap();
    let plan = lease_now(&engine, 8);
    answer(
        &engine,
        plan[0].token,
        Outcome::Success {
            value: json!({"bytes": 800, "avgLineBytes": 8}),
        },
    );
    // 800 bytes in shards of 10 lines x 8 bytes: byte ranges of leaves.
    let mut covered = 0;
    let mut leaves = 0;
    let mut pending = lease_now(&engine, 64);
    while !pending.is_empty() {
        for l in &pending {
            if let Work::MapLeaf {
                slice: Slice::Lines { start, end, .. },
                ..
            } = &l.work
            {
                assert!(end - start <= 80, "a leaf of {start}..{end}");
                covered += end - start;
                leaves += 1;
            }
        }
        complete_all(&engine, &pending);
        pending = lease_now(&engine, 64);
    }
    assert_eq!((covered, leaves), (800, 10));
    let statuses = drive(&engine, &["m"], Duration::from_secs(10));
    let s = future_status(&statuses[0]);
    assert_eq!(s.phase, Some(Phase::Succeeded), "{s:#?}");
    // 100 lines of 7 characters each.
    assert_eq!(s.result, Some(json!(700)));
    let p = s.progress.as_ref().unwrap();
    assert_eq!((p.done, p.total), (800, 800));
}

#[test]
fn a_plan_survives_a_restart_before_and_after_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = lines_file(dir.path(), 50);
    let store = dir.path().join("store");
    {
        let engine = open(&store);
        engine.submit(vec![lines_future("m", &path, 5)]).unwrap();
        // Leased, never answered: the plan is leased again after a restart.
        let held = lease_now(&engine, 1);
        assert!(matches!(held[0].work, Work::Plan { .. }));
        engine.close();
    }
    {
        let engine = open(&store);
        let again = lease_now(&engine, 8);
        assert!(matches!(again[0].work, Work::Plan { .. }), "{again:?}");
        complete_all(&engine, &again);
        engine.close();
    }
    // Answered before the restart: the map's shape was stored with it.
    let engine = open(&store);
    let leases = lease_now(&engine, 64);
    assert!(
        leases
            .iter()
            .all(|l| matches!(l.work, Work::MapLeaf { .. })),
        "{leases:?}"
    );
    complete_all(&engine, &leases);
    let statuses = drive(&engine, &["m"], Duration::from_secs(10));
    assert_eq!(future_status(&statuses[0]).result, Some(json!(50 * 7)));
}

#[test]
fn a_worker_that_cannot_read_the_file_fails_the_future_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine
        .submit(vec![lines_future("m", "/corpus/rhyme.txt", 10)])
        .unwrap();
    let plan = lease_now(&engine, 1);
    let message = "spec.map.source.lines.path: lines source '/corpus/rhyme.txt': No such file or directory (os error 2)";
    answer(
        &engine,
        plan[0].token,
        Outcome::Failure {
            message: message.into(),
            permanent: true,
        },
    );
    let s = status(&engine, "m");
    let f = future_status(&s);
    assert_eq!(f.phase, Some(Phase::Failed), "{f:#?}");
    let text = serde_json::to_string(f).unwrap();
    assert!(text.contains("/corpus/rhyme.txt"), "{text}");
    assert!(lease_now(&engine, 8).is_empty());
}

#[test]
fn an_answer_that_is_not_a_plan_fails_the_future_and_says_what_was_expected() {
    for bad in [
        json!(42),
        json!({"bytes": -1, "avgLineBytes": 8}),
        json!({"bytes": 8}),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(&dir.path().join("store"));
        engine
            .submit(vec![lines_future("m", "/data/x.txt", 10)])
            .unwrap();
        let plan = lease_now(&engine, 1);
        answer(
            &engine,
            plan[0].token,
            Outcome::Success { value: bad.clone() },
        );
        let s = status(&engine, "m");
        let f = future_status(&s);
        assert_eq!(f.phase, Some(Phase::Failed), "{bad}: {f:#?}");
        let text = serde_json::to_value(f).unwrap().to_string();
        assert!(text.contains("not a plan"), "{bad}: {text}");
    }
}

/// A bucket of the test worker: `objects` as files named by key.
fn bucket(name: &str, objects: &[(&str, usize)]) {
    let dir = bucket_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (key, lines) in objects {
        let mut f = std::fs::File::create(dir.join(key)).unwrap();
        for i in 0..*lines {
            writeln!(f, "line {i:02}").unwrap();
        }
    }
}

#[test]
fn the_lines_of_every_object_under_a_prefix_are_mapped_once() {
    let name = format!("lines-{}", std::process::id());
    // An empty object between two others, and one outside the prefix.
    bucket(&name, &[("p-a", 37), ("p-b", 0), ("p-c", 51), ("q-x", 9)]);
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine
        .submit(vec![future(
            "m",
            &format!("{{map: {{source: {{objects: {{url: 's3://{name}/p-'}}}}, function: {{function: t.len}}, shardSize: 5, fanout: 3, reduce: sum}}}}"),
        )])
        .unwrap();
    let plan = lease_now(&engine, 8);
    assert!(
        matches!(&plan[0].work, Work::Plan { source: SourceRef::Objects { key, lines: true, .. } } if key == "p-"),
        "{plan:?}"
    );
    complete_all(&engine, &plan);
    // Leaves of 5 lines x 8 bytes; the one that straddles p-a and p-c
    // names both (the empty p-b too, which holds nothing).
    let mut straddles = false;
    let mut pending = lease_now(&engine, 64);
    while !pending.is_empty() {
        for l in &pending {
            if let Work::MapLeaf {
                slice:
                    Slice::ObjectLines {
                        parts, start, end, ..
                    },
                ..
            } = &l.work
            {
                assert!(!parts.is_empty() && end - start <= 40, "{parts:?}");
                straddles |= parts.first().map(|p| p.key.as_str()) == Some("p-a")
                    && parts.last().map(|p| p.key.as_str()) == Some("p-c");
            }
        }
        complete_all(&engine, &pending);
        pending = lease_now(&engine, 64);
    }
    assert!(
        straddles,
        "a leaf spans the end of one object and the start of the next"
    );
    let statuses = drive(&engine, &["m"], Duration::from_secs(10));
    let s = future_status(&statuses[0]);
    assert_eq!(s.result, Some(json!((37 + 51) * 7)), "{s:#?}");
    let p = s.progress.as_ref().unwrap();
    assert_eq!((p.done, p.total), ((37 + 51) * 8, (37 + 51) * 8));
}

#[test]
fn objects_as_items_call_the_function_with_each_object() {
    let name = format!("items-{}", std::process::id());
    bucket(&name, &[("a", 1), ("b", 2), ("c", 3)]);
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine
        .submit(vec![future(
            "m",
            &format!("{{map: {{source: {{objects: {{url: 's3://{name}/', read: objects}}}}, function: {{function: t.echo}}, shardSize: 2, reduce: collect}}}}"),
        )])
        .unwrap();
    let statuses = drive(&engine, &["m"], Duration::from_secs(10));
    let s = future_status(&statuses[0]);
    let keys: Vec<Value> = s
        .result
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["item"]["url"].clone())
        .collect();
    assert_eq!(
        keys,
        [
            json!(format!("s3://{name}/a")),
            json!(format!("s3://{name}/b")),
            json!(format!("s3://{name}/c"))
        ]
    );
    assert_eq!(s.result.as_ref().unwrap()[1]["item"]["size"], 16);
    let _ = std::fs::remove_dir_all(bucket_dir(&name));
}
