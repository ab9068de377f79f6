//! The change feed: every subscriber hears, once per read, of each object
//! whose status may have changed and each pool whose figures moved.

mod common;

use common::*;
use kontinuum_api::ObjectId;
use kontinuum_engine::Changes;
use std::time::Duration;

fn pool(ns: &str) -> (String, String) {
    (ns.to_string(), "default".to_string())
}

fn now_changes(feed: &kontinuum_engine::ChangeFeed) -> Changes {
    feed.wait(Duration::ZERO)
}

#[test]
fn submissions_leases_and_outcomes_reach_the_feed_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let feed = engine.subscribe();
    assert!(now_changes(&feed).is_empty(), "nothing yet");
    engine
        .submit(vec![
            task("a", "{call: {function: t.sum}}"),
            task("b", "{call: {function: t.sum}}"),
        ])
        .unwrap();
    let got = now_changes(&feed);
    assert_eq!(got.objects, [tid("a"), tid("b")]);
    assert_eq!(got.pools, [pool("default")]);
    assert!(now_changes(&feed).is_empty(), "each change is read once");
    let leases = lease_now(&engine, 1);
    let got = now_changes(&feed);
    assert_eq!(got.objects, [tid("a")], "a is Running now, b unchanged");
    assert_eq!(got.pools, [pool("default")]);
    complete_all(&engine, &leases);
    assert_eq!(now_changes(&feed).objects, [tid("a")]);
    // A change the feed has not read yet is reported once, however often
    // it happened.
    let leases = lease_now(&engine, 1);
    engine.heartbeat(leases[0].token, None).unwrap();
    complete_all(&engine, &leases);
    assert_eq!(now_changes(&feed).objects, [tid("b")]);
}

#[test]
fn progress_from_heartbeats_reaches_the_feed_though_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "m",
            "{map: {source: {range: {start: 0, end: 100}}, function: {function: t.square}, shardSize: 100}}",
        )])
        .unwrap();
    let leaf = lease_now(&engine, 1);
    let feed = engine.subscribe();
    engine.heartbeat(leaf[0].token, Some(40)).unwrap();
    assert_eq!(now_changes(&feed).objects, [fid("m")]);
    engine.heartbeat(leaf[0].token, Some(40)).unwrap();
    assert!(
        now_changes(&feed).is_empty(),
        "the same progress again changes nothing"
    );
    let status = future_status(&status(&engine, "m")).clone();
    assert_eq!(status.progress.map(|p| p.done), Some(40));
}

#[test]
fn a_wait_returns_when_a_change_comes_and_subscribers_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let first = engine.subscribe();
    let second = engine.subscribe();
    let waiter = std::thread::spawn(move || first.wait(Duration::from_secs(60)));
    engine
        .submit(vec![task("x", "{call: {function: t.sum}}")])
        .unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(got.objects, [tid("x")], "woken by the submission");
    assert_eq!(now_changes(&second).objects, [tid("x")]);
    let t0 = std::time::Instant::now();
    assert!(second.wait(Duration::from_millis(30)).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(30));
}

#[test]
fn timers_cancellation_and_removal_reach_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            task("later", "{call: {function: t.sum}, delay: 1s}"),
            task("gone", "{call: {function: t.sum}, delay: 1h}"),
        ])
        .unwrap();
    let feed = engine.subscribe();
    advance(&engine, Duration::from_secs(1));
    let got = now_changes(&feed);
    assert_eq!(got.objects, [tid("later")], "Pending -> Queued");
    assert_eq!(got.pools, [pool("default")]);
    engine.cancel(&tid("gone")).unwrap();
    assert_eq!(now_changes(&feed).objects, [tid("gone")]);
    engine.remove(&tid("gone")).unwrap();
    assert_eq!(now_changes(&feed).objects, [tid("gone")]);
    let other: ObjectId = "other/task/x".parse().unwrap();
    engine
        .submit(vec![kontinuum_engine::Submission::task(
            &other.namespace,
            &other.name,
            yaml("{call: {function: t.sum}}"),
        )])
        .unwrap();
    let got = now_changes(&feed);
    assert_eq!((got.objects, got.pools), (vec![other], vec![pool("other")]));
}
