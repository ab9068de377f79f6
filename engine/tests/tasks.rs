//! Tasks through the engine: results, continuations, retries, timeouts,
//! debounce and exclusive sections. Time is the engine's manual clock
//! (common.rs), except in the one test of the ticker itself.

mod common;

use common::*;
use kontinuum_api::Phase;
use kontinuum_api::work::{Completion, CompletionAck, Outcome, Work};
use kontinuum_engine::{EngineError, ObjectStatus};
use serde_json::json;
use std::time::Duration;

#[test]
fn sum_with_continuation_runs_the_continuation_once_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("sum", "{call: {function: t.sum, args: {a: 4, b: 5}}, onSuccess: {function: t.echo, args: {c: 7}}}")])
        .unwrap();
    let statuses = drive(&engine, &["sum"], Duration::from_secs(10));
    let s = task_status(&statuses[0]);
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.result, Some(json!(9)));
    assert_eq!(s.attempts, 1);
    let call = kontinuum_api::FnRef::new("t.sum").arg("a", 4).arg("b", 5);
    assert_eq!(s.stable_id.as_deref(), Some(call.stable_id().as_str()));
    assert!(s.continuation.is_some(), "continuation id recorded");
    let cont = lease_now(&engine, 10);
    assert_eq!(cont.len(), 1, "one continuation");
    engine
        .complete(vec![Completion {
            token: cont[0].token,
            outcome: Outcome::Success { value: json!(null) },
        }])
        .unwrap();
    advance(&engine, Duration::from_secs(60));
    let more = lease_now(&engine, 10);
    assert!(
        more.is_empty(),
        "the continuation ran exactly once: {more:?}"
    );
}

#[test]
fn continuation_gets_result_bound() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.submit(vec![task("sum", "{call: {function: t.sum, args: {a: 4, b: 5}}, onSuccess: {function: t.echo, args: {c: 7}}}")]).unwrap();
    let first = lease_now(&engine, 10);
    assert_eq!(first.len(), 1);
    engine
        .complete(vec![Completion {
            token: first[0].token,
            outcome: Outcome::Success { value: json!(9) },
        }])
        .unwrap();
    let cont = lease_now(&engine, 10);
    assert_eq!(cont.len(), 1);
    match &cont[0].work {
        Work::Call { call } => {
            assert_eq!(call.function, "t.echo");
            assert_eq!(call.args.get("result"), Some(&json!(9)));
            assert_eq!(call.args.get("c"), Some(&json!(7)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retryable_failures_retry_with_backoff_then_fail_and_run_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "flaky",
            "{call: {function: t.flaky}, retry: {maxAttempts: 3, backoff: {initial: 50ms, factor: 2}}, onFailure: {function: t.echo}}",
        )])
        .unwrap();
    let started = now(&engine);
    let statuses = drive(&engine, &["flaky"], Duration::from_secs(10));
    let s = task_status(&statuses[0]);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.attempts, 3);
    let error = s.error.as_ref().unwrap();
    assert_eq!(error.message, "try again");
    assert_eq!(error.attempt, 3);
    // Backoff 50 ms then 100 ms, on the engine's clock; drive moves it in
    // 10 ms steps, so the run ends within one step of that.
    let took = now(&engine) - started;
    assert!(
        (150..=160).contains(&took),
        "backoff 50ms + 100ms: {took} ms"
    );
    assert!(s.continuation.is_some());
}

#[test]
fn permanent_failure_skips_retries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "f",
            "{call: {function: t.fail, args: {message: boom}}, retry: {maxAttempts: 5}}",
        )])
        .unwrap();
    let statuses = drive(&engine, &["f"], Duration::from_secs(10));
    let s = task_status(&statuses[0]);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.attempts, 1);
    assert_eq!(s.error.as_ref().unwrap().message, "boom");
}

#[test]
fn expired_lease_comes_back_and_stale_completion_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.submit(vec![task("t", "{call: {function: t.sum, args: {a: 1, b: 2}}, retry: {maxAttempts: 3, backoff: {initial: 10ms}}}")]).unwrap();
    let first = lease_now(&engine, 1);
    assert_eq!(first.len(), 1);
    // No heartbeat: the lease expires, the task is retried after 10 ms.
    advance(&engine, LEASE - Duration::from_millis(1));
    assert!(lease_now(&engine, 1).is_empty(), "the lease still holds");
    advance(&engine, Duration::from_millis(1));
    assert!(lease_now(&engine, 1).is_empty(), "backoff before the retry");
    advance(&engine, Duration::from_millis(10));
    let second = lease_now(&engine, 1);
    assert_eq!(second.len(), 1, "task came back after its lease expired");
    assert_eq!(second[0].attempt, 2);
    let stale = engine
        .complete(vec![Completion {
            token: first[0].token,
            outcome: Outcome::Success { value: json!(100) },
        }])
        .unwrap();
    assert_eq!(stale, vec![CompletionAck::Stale]);
    let ok = engine
        .complete(vec![Completion {
            token: second[0].token,
            outcome: Outcome::Success { value: json!(3) },
        }])
        .unwrap();
    assert_eq!(ok, vec![CompletionAck::Accepted]);
    assert_eq!(task_status(&status(&engine, "t")).result, Some(json!(3)));
}

#[test]
fn timeout_fails_the_attempt_even_with_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "slow",
            "{call: {function: t.sum}, timeout: 100ms, retry: {maxAttempts: 1}}",
        )])
        .unwrap();
    let leases = lease_now(&engine, 1);
    assert_eq!(leases[0].timeout_ms, Some(100));
    for _ in 0..3 {
        advance(&engine, Duration::from_millis(30));
        let hb = engine.heartbeat(leases[0].token, None).unwrap();
        assert!(!hb.cancelled && !hb.lost, "alive at 90 ms");
    }
    let s = task_status(&status(&engine, "slow")).clone();
    assert_eq!(s.phase, Some(Phase::Running));
    advance(&engine, Duration::from_millis(10));
    let s = status(&engine, "slow");
    let s = task_status(&s);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(
        s.error.as_ref().unwrap().kind,
        kontinuum_api::common::ErrorKind::Timeout
    );
}

#[test]
fn delay_holds_the_task_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "later",
            "{call: {function: t.sum}, delay: 300ms}",
        )])
        .unwrap();
    assert_eq!(
        task_status(&status(&engine, "later")).phase,
        Some(Phase::Pending)
    );
    advance(&engine, Duration::from_millis(299));
    assert!(lease_now(&engine, 1).is_empty());
    advance(&engine, Duration::from_millis(1));
    assert_eq!(lease_now(&engine, 1).len(), 1);
}

#[test]
fn the_ticker_releases_due_work_on_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_wall(dir.path());
    let t0 = std::time::Instant::now();
    engine
        .submit(vec![task(
            "later",
            "{call: {function: t.sum}, delay: 50ms}",
        )])
        .unwrap();
    let leased = engine
        .lease("*", None, "w", 1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(leased.len(), 1, "the ticker queued it without tick()");
    // The engine counts whole milliseconds, so the delay may end up to 1 ms
    // before 50 ms of this Instant have passed.
    assert!(
        t0.elapsed() >= Duration::from_millis(49),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn debounce_runs_once_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = |id: &str| {
        format!(
            "{{call: {{function: t.echo, args: {{personId: '{id}'}}}}, debounce: {{initial: 200ms, repeat: 1s}}}}"
        )
    };
    engine
        .submit(vec![
            task("a1", &spec("1234")),
            task("a2", &spec("1234")),
            task("b1", &spec("5432")),
        ])
        .unwrap();
    let statuses = drive(&engine, &["a1", "a2", "b1"], Duration::from_secs(10));
    let phases: Vec<_> = statuses
        .iter()
        .map(|s| task_status(s).phase.unwrap())
        .collect();
    assert_eq!(phases, [Phase::Succeeded, Phase::Merged, Phase::Succeeded]);
    assert_eq!(task_status(&statuses[1]).merged_into.as_deref(), Some("a1"));
    // A call after the run started schedules a new run no earlier than
    // repeat (1 s) after that run started.
    engine.submit(vec![task("a3", &spec("1234"))]).unwrap();
    let a3 = drive(&engine, &["a3"], Duration::from_secs(10));
    let started = |s: &ObjectStatus| {
        let at = task_status(s).started_at.clone().expect("startedAt");
        chrono::DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .timestamp_millis()
    };
    let gap = started(&a3[0]) - started(&statuses[0]);
    assert!((1_000..1_010).contains(&gap), "runs {gap} ms apart");
}

fn exclusive_runs(rerun: bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = format!(
        "{{call: {{function: t.sum, args: {{a: 1, b: 1}}}}, exclusive: {{rerunOnSkip: {rerun}}}}}"
    );
    // The first call takes the section and is running while the others arrive.
    engine.submit(vec![task("x0", &spec)]).unwrap();
    let first = lease_now(&engine, 1);
    assert_eq!(first.len(), 1);
    let threads: Vec<_> = (1..100)
        .map(|i| {
            let engine = engine.clone();
            let spec = spec.clone();
            std::thread::spawn(move || engine.submit(vec![task(&format!("x{i}"), &spec)]).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        lease_now(&engine, 10).is_empty(),
        "nobody runs beside the holder"
    );
    engine
        .complete(vec![Completion {
            token: first[0].token,
            outcome: Outcome::Success { value: json!(2) },
        }])
        .unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let statuses = drive(&engine, &refs, Duration::from_secs(10));
    statuses
        .iter()
        .filter(|s| task_status(s).phase == Some(Phase::Succeeded))
        .count()
}

#[test]
fn exclusive_hundred_calls_give_two_runs_with_rerun() {
    assert_eq!(exclusive_runs(true), 2);
}

#[test]
fn exclusive_hundred_calls_give_one_run_without_rerun() {
    assert_eq!(exclusive_runs(false), 1);
}

#[test]
fn resubmitting_is_idempotent_and_a_changed_spec_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "s",
            "{call: {function: t.sum, args: {a: 1, b: 2}}}",
        )])
        .unwrap();
    engine
        .submit(vec![task(
            "s",
            "{call: {function: t.sum, args: {a: 1, b: 2}}}",
        )])
        .unwrap();
    assert_eq!(lease_now(&engine, 10).len(), 1);
    let err = engine
        .submit(vec![task(
            "s",
            "{call: {function: t.sum, args: {a: 9, b: 2}}}",
        )])
        .unwrap_err();
    assert!(matches!(err, EngineError::Conflict { .. }), "{err}");
}

#[test]
fn bad_submission_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let err = engine
        .submit(vec![
            task("good", "{call: {function: t.sum}}"),
            task("bad", "{call: {function: t.sum}, timeout: 10x}"),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("spec.timeout"), "{err}");
    assert!(engine.objects().unwrap().is_empty());
    assert!(lease_now(&engine, 10).is_empty());
}

#[test]
fn accepted_work_survives_a_restart_and_running_work_is_queued_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![
                task("a", "{call: {function: t.sum, args: {a: 2, b: 3}}}"),
                task("b", "{call: {function: t.sum, args: {a: 1, b: 1}}}"),
            ])
            .unwrap();
        let leased = lease_now(&engine, 1);
        assert_eq!(leased.len(), 1);
        engine.close();
    }
    // A manual-clock engine has no ticker: dropping it closes the store.
    let engine = open(dir.path());
    let statuses = drive(&engine, &["a", "b"], Duration::from_secs(10));
    assert_eq!(task_status(&statuses[0]).result, Some(json!(5)));
    assert_eq!(task_status(&statuses[1]).result, Some(json!(2)));
}

#[test]
fn concurrent_submissions_of_one_name_create_one_task() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = "{call: {function: t.echo, args: {n: 1}}}";
    let rounds = 20;
    for round in 0..rounds {
        let name = format!("once-{round}");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (engine, name, start) = (&engine, &name, &start);
                s.spawn(move || {
                    start.wait();
                    engine.submit(vec![task(name, spec)]).unwrap()
                });
            }
        });
    }
    assert_eq!(engine.objects().unwrap().len(), rounds);
    let leases = lease_now(&engine, 1000);
    assert_eq!(
        leases.len(),
        rounds,
        "eight submissions per name, one run each"
    );
}

#[test]
fn a_store_written_by_another_layout_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Without sled's flusher thread, which could still hold the store's
        // lock for a moment after the drop.
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        db.insert("o/old-task", &b"{}"[..]).unwrap();
        db.flush().unwrap();
    }
    let err = kontinuum_engine::Engine::open(dir.path(), Default::default())
        .err()
        .expect("an old store is refused");
    let text = err.to_string();
    assert!(
        text.contains("another version of Kontinuum") && text.contains("new data directory"),
        "{text}"
    );
}

#[test]
fn a_store_open_elsewhere_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = kontinuum_engine::Engine::open(dir.path(), Default::default())
        .err()
        .expect("one engine per store");
    assert!(
        matches!(&err, EngineError::Locked { path } if path == dir.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    // Released with the engine: the next one opens it.
    open(dir.path());
}

#[test]
fn a_store_that_cannot_be_opened_for_another_reason_is_not_called_locked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let err = kontinuum_engine::Engine::open(&file, Default::default())
        .err()
        .expect("a file is no store");
    assert!(matches!(err, EngineError::Store(_)), "{err:?}");
}

#[test]
fn a_released_lease_is_queued_again_at_once_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "once",
            "{call: {function: t.sum, args: {a: 1, b: 2}}, retry: {maxAttempts: 1}}",
        )])
        .unwrap();
    let first = engine
        .lease("*", None, "w", 1, Duration::from_secs(1))
        .unwrap();
    assert_eq!(first[0].attempt, 1);
    let acks = engine.release(vec![first[0].token]).unwrap();
    assert_eq!(acks, vec![CompletionAck::Accepted]);
    let s = engine.status(&tid("once")).unwrap();
    assert_eq!(task_status(&s).phase, Some(Phase::Queued));
    assert_eq!(task_status(&s).attempts, 0);
    // Released twice, or completed after release: the token is stale.
    assert_eq!(
        engine.release(vec![first[0].token]).unwrap(),
        vec![CompletionAck::Stale]
    );
    let stale = Completion {
        token: first[0].token,
        outcome: Outcome::Success { value: json!(3) },
    };
    assert_eq!(
        engine.complete(vec![stale]).unwrap(),
        vec![CompletionAck::Stale]
    );
    // No lease expiry to wait for, and maxAttempts 1 is still whole.
    let again = engine.lease("*", None, "w", 1, Duration::ZERO).unwrap();
    assert_eq!(again.len(), 1, "queued again at once");
    assert_eq!(again[0].attempt, 1);
    engine
        .complete(vec![Completion {
            token: again[0].token,
            outcome: Outcome::Success { value: json!(3) },
        }])
        .unwrap();
    let s = engine.status(&tid("once")).unwrap();
    assert_eq!(task_status(&s).phase, Some(Phase::Succeeded));
    assert_eq!(task_status(&s).attempts, 1);
}
