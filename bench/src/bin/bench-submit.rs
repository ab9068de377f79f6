//! Memory of a big submission and of listing it: one POST of N tasks
//! (default 50,000: a 7.7 MiB body) to a server in a process of its own,
//! whose peak resident memory (VmHWM) is read before and after; then the
//! whole listing, page by page, with the largest page's size.
//!
//!   bench-submit [TASKS]
//!
//! The server is this program again (`bench-submit --serve DIR PORT`), so
//! the client's own memory (the body, the answers) is not counted.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::Server;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--serve") {
        let (Some(dir), Some(port)) = (args.get(1), args.get(2)) else {
            bail!("usage: bench-submit --serve DIR PORT");
        };
        return runtime.block_on(serve(dir, port.parse()?));
    }
    let tasks: usize = args.first().map_or(Ok(50_000), |a| a.parse())?;
    runtime.block_on(measure(tasks))
}

async fn serve(dir: &str, port: u16) -> anyhow::Result<()> {
    let engine = Engine::open(std::path::Path::new(dir), EngineConfig::default())?;
    let server = Server::bind(engine, ([127, 0, 0, 1], port).into(), None).await?;
    server.run(std::future::pending()).await?;
    Ok(())
}

/// The server process, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (VmHWM, VmRSS) of a process, in MiB.
fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed status line")?
            .parse()?;
        Ok((kib / 1024.0 * 10.0).round() / 10.0)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

async fn measure(tasks: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = Served(
        Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let t0 = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the server did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (idle_peak, _) = memory(pid)?;

    let objects: Vec<Value> = (0..tasks)
        .map(|i| {
            json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                   "metadata": {"name": format!("task-{i:06}")},
                   "spec": {"call": {"function": "std.echo", "args": {"i": i, "n": "abcdefghij"}}}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"objects": objects}))?;
    drop(objects);
    let body_mib = body.len() as f64 / (1 << 20) as f64;
    let t = Instant::now();
    let answer = http
        .post(format!("{base}/v1/objects"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if answer.status().as_u16() != 201 {
        bail!(
            "submit answered {}: {}",
            answer.status(),
            answer.text().await?
        );
    }
    let submit_s = t.elapsed().as_secs_f64();
    let (submit_peak, after_rss) = memory(pid)?;

    let t = Instant::now();
    let (mut pages, mut listed, mut largest) = (0, 0, 0);
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/objects");
        if let Some(t) = &token {
            url.push_str(&format!("?continue={t}"));
        }
        let bytes = http.get(url).send().await?.bytes().await?;
        largest = largest.max(bytes.len());
        let page: Value = serde_json::from_slice(&bytes)?;
        pages += 1;
        listed += page["items"].as_array().map_or(0, Vec::len);
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    let list_s = t.elapsed().as_secs_f64();
    let (list_peak, _) = memory(pid)?;
    if listed != tasks {
        bail!("listed {listed} of {tasks} objects");
    }
    let round = |x: f64| (x * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"bench": "submit", "tasks": tasks, "body_mib": round(body_mib),
               "idle_peak_mib": idle_peak, "submit_peak_mib": submit_peak,
               "rss_after_submit_mib": after_rss, "submit_s": round(submit_s),
               "list_pages": pages, "largest_page_kib": largest / 1024,
               "list_s": round(list_s), "peak_after_list_mib": list_peak})
    );
    eprintln!(
        "submit of {tasks} tasks ({body_mib:.1} MiB): peak RSS {submit_peak} MiB (idle {idle_peak}), {submit_s:.1} s; listing: {pages} pages, largest {} KiB, {list_s:.1} s",
        largest / 1024
    );
    Ok(())
}
