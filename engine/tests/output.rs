//! spec.output: a future's value written to an object by a worker, the
//! tree's value (status, continuation) becoming the reference to it.

mod common;

use common::*;
use kontinuum_api::Phase;
use kontinuum_api::work::{Completion, Outcome, Work};
use serde_json::{Value, json};
use std::time::Duration;

fn squares(name: &str, bucket: &str, reduce: &str) -> kontinuum_engine::Submission {
    future(
        name,
        &format!(
            "{{map: {{source: {{range: {{start: 0, end: 100}}}}, function: {{function: t.square}}, shardSize: 10, reduce: {reduce}}}, output: {{url: 's3://{bucket}/results/{name}.json'}}}}"
        ),
    )
}

fn fresh_bucket(name: &str) -> String {
    let bucket = format!("{name}-{}", std::process::id());
    let dir = bucket_dir(&bucket).join("results");
    let _ = std::fs::remove_dir_all(bucket_dir(&bucket));
    std::fs::create_dir_all(dir).unwrap();
    bucket
}

/// Leases and completes until a lease is an Output; returns it.
fn until_output(engine: &kontinuum_engine::Engine) -> kontinuum_api::work::Lease {
    for _ in 0..1000 {
        let leases = lease_now(engine, 64);
        if let Some(out) = leases
            .iter()
            .find(|l| matches!(l.work, Work::Output { .. }))
        {
            return out.clone();
        }
        if leases.is_empty() {
            advance(engine, Duration::from_millis(10));
        }
        complete_all(engine, &leases);
    }
    panic!("no output lease");
}

#[test]
fn the_value_goes_to_the_object_and_the_status_keeps_its_reference() {
    let bucket = fresh_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine.submit(vec![squares("sq", &bucket, "sum")]).unwrap();
    let lease = until_output(&engine);
    let expected: i64 = (0..100).map(|i| i * i).sum();
    let Work::Output { store, key, value } = &lease.work else {
        unreachable!()
    };
    assert_eq!(
        (store.bucket.as_str(), key.as_str(), value),
        (bucket.as_str(), "results/sq.json", &json!(expected))
    );
    complete_all(&engine, &[lease]);
    let s = status(&engine, "sq");
    let f = future_status(&s);
    assert_eq!(f.phase, Some(Phase::Succeeded), "{f:#?}");
    let reference = f.result.clone().unwrap();
    assert_eq!(reference["url"], format!("s3://{bucket}/results/sq.json"));
    let written = std::fs::read(bucket_dir(&bucket).join("results/sq.json")).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&written).unwrap(),
        json!(expected)
    );
    assert_eq!(reference["bytes"], written.len());
    assert_eq!(reference["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn an_fnref_reducers_value_is_written_after_its_fold() {
    let bucket = fresh_bucket("fold");
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine
        .submit(vec![squares("folded", &bucket, "{function: t.add}")])
        .unwrap();
    let lease = until_output(&engine);
    assert!(
        matches!(&lease.work, Work::Output { value, .. } if value.is_i64()),
        "{lease:?}"
    );
    complete_all(&engine, &[lease]);
    let statuses = drive(&engine, &["folded"], Duration::from_secs(10));
    assert_eq!(future_status(&statuses[0]).phase, Some(Phase::Succeeded));
}

#[test]
fn a_pending_output_survives_a_restart_and_is_written_once_answered() {
    let bucket = fresh_bucket("restart");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let value = {
        let engine = open(&store);
        engine
            .submit(vec![squares("sq", &bucket, "collect")])
            .unwrap();
        let lease = until_output(&engine);
        let Work::Output { value, .. } = lease.work else {
            unreachable!()
        };
        engine.close();
        value
    };
    let engine = open(&store);
    let again = until_output(&engine);
    assert!(matches!(&again.work, Work::Output { value: v, .. } if *v == value));
    complete_all(&engine, &[again]);
    let f = future_status(&status(&engine, "sq")).clone();
    assert_eq!(f.phase, Some(Phase::Succeeded), "{f:#?}");
}

#[test]
fn an_answer_that_is_not_a_written_object_fails_the_future() {
    let bucket = fresh_bucket("bad");
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("store"));
    engine.submit(vec![squares("sq", &bucket, "sum")]).unwrap();
    let lease = until_output(&engine);
    engine
        .complete(vec![Completion {
            token: lease.token,
            outcome: Outcome::Success {
                value: json!(328350),
            },
        }])
        .unwrap();
    let s = status(&engine, "sq");
    let f = future_status(&s);
    assert_eq!(f.phase, Some(Phase::Failed), "{f:#?}");
    assert!(
        serde_json::to_string(f)
            .unwrap()
            .contains("not a written object")
    );
}
