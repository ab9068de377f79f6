//! What scraping the metrics costs: `bench-noop` runs with and without
//! `--scrape-ms`, alternated (each pair in the other order than the one
//! before, so a machine that slows down or speeds up during the session
//! weighs on both sides alike), and the medians of each side compared.
//!
//!   bench-scrape [--runs 8] [--tasks 100000] [--scrape-ms 100]
//!
//! Needs `bench-noop` beside it (`cargo build --release -p kontinuum-bench`).

use anyhow::{Context, bail};
use kontinuum_bench::flag;
use serde_json::{Value, json};
use std::process::Command;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runs = flag(&args, "--runs").unwrap_or(8);
    let tasks = flag(&args, "--tasks").unwrap_or(100_000);
    let scrape_ms = flag(&args, "--scrape-ms").unwrap_or(100);
    let noop = std::env::current_exe()?.with_file_name("bench-noop");
    if !noop.exists() {
        bail!("{} is missing: build the benchmarks first", noop.display());
    }
    let mut plain = Vec::new();
    let mut scraped = Vec::new();
    for pair in 0..runs {
        let order = if pair % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for scrape in order {
            let mut cmd = Command::new(&noop);
            cmd.args(["--tasks", &tasks.to_string()]);
            if scrape {
                cmd.args(["--scrape-ms", &scrape_ms.to_string()]);
            }
            let out = cmd.output().context("run bench-noop")?;
            if !out.status.success() {
                bail!(
                    "bench-noop failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let line: Value = serde_json::from_slice(&out.stdout).with_context(|| {
                format!("bench-noop said {}", String::from_utf8_lossy(&out.stdout))
            })?;
            eprintln!("{line}");
            let rate = line["tasks_per_sec"].as_f64().context("tasks_per_sec")?;
            if scrape {
                if line["scrapes"].as_u64().unwrap_or(0) == 0 {
                    bail!("a scraped run without a scrape: {line}");
                }
                scraped.push((rate, line));
            } else {
                plain.push((rate, line));
            }
        }
    }
    let median = |v: &mut Vec<(f64, Value)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2].0
        } else {
            (v[n / 2 - 1].0 + v[n / 2].0) / 2.0
        }
    };
    let (m_plain, m_scraped) = (median(&mut plain), median(&mut scraped));
    let change = (m_scraped - m_plain) / m_plain * 100.0;
    let scrapes: Vec<u64> = scraped
        .iter()
        .filter_map(|(_, l)| l["scrapes"].as_u64())
        .collect();
    let p50s: Vec<f64> = scraped
        .iter()
        .filter_map(|(_, l)| l["scrape_p50_ms"].as_f64())
        .collect();
    println!(
        "{}",
        json!({
            "bench": "scrape",
            "tasks": tasks,
            "runs_each": runs,
            "scrape_ms": scrape_ms,
            "median_plain": m_plain.round(),
            "median_scraped": m_scraped.round(),
            "change_percent": (change * 10.0).round() / 10.0,
            "plain": plain.iter().map(|(r, _)| r.round()).collect::<Vec<_>>(),
            "scraped": scraped.iter().map(|(r, _)| r.round()).collect::<Vec<_>>(),
            "scrapes_per_run": scrapes,
            "scrape_p50_ms": p50s,
        })
    );
    eprintln!(
        "medians of {runs} runs each: {m_plain:.0} tasks/s without scraping, {m_scraped:.0} with a scrape every {scrape_ms} ms: {change:+.1} % (target: within 5 %)"
    );
    Ok(())
}
