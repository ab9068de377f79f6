use kontinuum_api::wire::{Completion, Outcome, Work};
use kontinuum_engine::{Engine, EngineConfig, Submission};
use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let t0 = Instant::now();
    let spec: kontinuum_api::TaskSpec =
        serde_yaml::from_str("{call: {function: std.echo, args: {x: 1}}}").unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let subs = chunk
            .iter()
            .map(|i| Submission::Task {
                name: format!("t{i}"),
                spec: spec.clone(),
            })
            .collect();
        engine.submit(subs).unwrap();
    }
    let t1 = Instant::now();
    let mut done = 0;
    while done < n {
        let leases = engine
            .lease("*", "w", 256, Duration::from_millis(10))
            .unwrap();
        let c: Vec<Completion> = leases
            .iter()
            .map(|l| match &l.work {
                Work::Call { call } => Completion {
                    token: l.token,
                    outcome: Outcome::Success {
                        value: serde_json::Value::Object(call.args.clone()),
                    },
                },
                _ => unreachable!(),
            })
            .collect();
        done += c.len();
        engine.complete(c).unwrap();
    }
    let t2 = Instant::now();
    println!(
        "submit {:?} ({:.0}/s), run {:?} ({:.0}/s), total {:.0}/s",
        t1 - t0,
        n as f64 / (t1 - t0).as_secs_f64(),
        t2 - t1,
        n as f64 / (t2 - t1).as_secs_f64(),
        n as f64 / (t2 - t0).as_secs_f64()
    );
}
