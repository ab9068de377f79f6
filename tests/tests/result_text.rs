//! A result beyond 64 bits read through kubectl: `status.resultText` and
//! the RESULT column carry every digit, where kubectl's reading of
//! `status.result` (integers beyond 64 bits as doubles) does not.

use kontinuum_e2e::procs::{Operator, OperatorOptions};
use kontinuum_e2e::{TestNamespace, client, ensure_crds, kubectl, kubectl_stdin, parse_table};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sum_beyond_64_bits_reads_exactly_through_kubectl() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "result").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();
    let mut operator = Operator::start(dir.path(), "a", &OperatorOptions::watching(dir.path(), n));
    operator.wait_ready(Duration::from_secs(60));
    let _worker = operator.worker(dir.path(), "1", &[]);
    // The sum of the squares of 0..4,000,000 = 3999999·4·10^6·7999999/6,
    // above 2^64.
    let exact = "21333325333334000000";
    let future = serde_json::json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "squares"},
        "spec": {"map": {"source": {"range": {"start": 0, "end": 4_000_000}},
                         "function": {"function": "std.square"},
                         "shardSize": 100_000, "reduce": "sum"}},
    });
    kubectl_stdin(&["apply", "-n", n, "-f", "-"], Some(&future.to_string()));
    let start = Instant::now();
    loop {
        let phase = kubectl(&[
            "get",
            "-n",
            n,
            "future",
            "squares",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        if phase == "Succeeded" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "phase {phase}:\n{}",
            operator.proc.output()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = kubectl(&[
        "get",
        "-n",
        n,
        "future",
        "squares",
        "-o",
        "jsonpath={.status.resultText}",
    ]);
    assert_eq!(text, exact);
    let (header, rows) = parse_table(&kubectl(&["get", "-n", n, "futures", "squares"]));
    let at = header.iter().position(|h| h == "RESULT").unwrap();
    assert_eq!(rows[0][at], exact);
    // What the issue met: kubectl's own reading of the number.
    let lossy = kubectl(&[
        "get",
        "-n",
        n,
        "future",
        "squares",
        "-o",
        "jsonpath={.status.result}",
    ]);
    eprintln!("status.result through kubectl: {lossy}; status.resultText: {text}");
}
