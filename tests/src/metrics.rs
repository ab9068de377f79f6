//! docs/metrics.md against what processes really serve: the documented
//! tables ([`documented`]), a scrape in the Prometheus text format
//! ([`served`]), and where the two disagree ([`disagreements`]).

use std::collections::{BTreeMap, BTreeSet};

pub use kontinuum_server::metrics::sample as value;

/// One row of docs/metrics.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    pub kind: String,
    pub labels: BTreeSet<String>,
    /// The heading the row's table is under (`Work`, `Worker`, ...).
    pub section: String,
}

/// Every `kontinuum_*` row of the markdown's tables, with the heading it
/// is under. The labels cell is a comma-separated list (empty: none).
pub fn documented(markdown: &str) -> BTreeMap<String, Documented> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            section = heading.trim_start_matches('#').trim().to_owned();
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if let [name, kind, labels, ..] = cells[..]
            && let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`'))
            && name.starts_with("kontinuum_")
        {
            let labels = labels
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            out.insert(
                name.to_owned(),
                Documented {
                    kind: kind.to_owned(),
                    labels,
                    section: section.clone(),
                },
            );
        }
    }
    out
}

/// One metric family of a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    pub kind: String,
    /// Label names over all its samples (`le` of histogram buckets aside).
    pub labels: BTreeSet<String>,
    pub samples: usize,
}

/// The `kontinuum_*` families of a text-format scrape, by `# TYPE` line;
/// a histogram's `_bucket`, `_sum` and `_count` samples count as its own.
pub fn served(exposition: &str) -> BTreeMap<String, Served> {
    let mut out: BTreeMap<String, Served> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ')
                && name.starts_with("kontinuum_")
            {
                out.entry(name.to_owned()).or_default().kind = kind.trim().to_owned();
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = series
            .split_once('{')
            .map_or((series, ""), |(n, l)| (n, l.trim_end_matches('}')));
        let family = if out.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|base| out.get(*base).is_some_and(|f| f.kind == "histogram"))
                .unwrap_or(name)
        };
        let Some(entry) = out.get_mut(family) else {
            continue;
        };
        entry.samples += 1;
        for pair in label_pairs(labels) {
            if pair != "le" {
                entry.labels.insert(pair);
            }
        }
    }
    out
}

/// The label names of `a="x",b="y"`; values may hold commas and braces
/// (route templates), not escaped quotes.
fn label_pairs(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').trim().to_owned());
        rest = after.split_once('"').map_or("", |(_, r)| r);
    }
    names
}

/// What a scrape and the docs disagree on: a served family not
/// documented, or documented with another type or other labels; and a
/// documented family that `expected` says this process serves but that has
/// no sample.
pub fn disagreements(
    docs: &BTreeMap<String, Documented>,
    scrape: &BTreeMap<String, Served>,
    expected: impl Fn(&Documented) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in scrape {
        match docs.get(name) {
            None => out.push(format!("{name} is served but not in docs/metrics.md")),
            Some(d) if d.kind != s.kind => out.push(format!(
                "{name} is a {} but docs/metrics.md says {}",
                s.kind, d.kind
            )),
            Some(d) if s.samples > 0 && d.labels != s.labels => out.push(format!(
                "{name} has labels {:?} but docs/metrics.md says {:?}",
                s.labels, d.labels
            )),
            Some(_) => {}
        }
    }
    for (name, d) in docs {
        if expected(d) && scrape.get(name).is_none_or(|s| s.samples == 0) {
            out.push(format!(
                "{name} ({}) is in docs/metrics.md but was not served",
                d.section
            ));
        }
    }
    out
}

/// A Prometheus for one test (tests/cluster/prometheus.sh), scraping the
/// given jobs every second; stopped when dropped.
pub struct Prometheus {
    pub url: String,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// `jobs`: (job name, `HOST:PORT` targets serving /metrics).
    pub fn start(dir: &std::path::Path, jobs: &[(&str, Vec<String>)]) -> Prometheus {
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            // honor_labels: `namespace` is the work's, as the chart's
            // ServiceMonitor keeps it.
            config.push_str(&format!(
                "  - job_name: {job}\n    honor_labels: true\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        Prometheus::start_with_config(dir, &config)
    }

    /// Starts a Prometheus with a whole `prometheus.yml` of the caller's
    /// (e.g. with Kubernetes service discovery).
    pub fn start_with_config(dir: &std::path::Path, config: &str) -> Prometheus {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let pdir = dir.join("prometheus");
        let out =
            std::process::Command::new(crate::repo_root().join("tests/cluster/prometheus.sh"))
                .arg("start")
                .arg(&pdir)
                .arg(&file)
                .output()
                .expect("run tests/cluster/prometheus.sh");
        assert!(
            out.status.success(),
            "Prometheus did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Prometheus {
            url: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            dir: pdir,
        }
    }

    /// An instant query's answer (`/api/v1/query`).
    pub async fn query(&self, expr: &str) -> serde_json::Value {
        let url = format!("{}/api/v1/query", self.url);
        let resp = reqwest::Client::new()
            .get(&url)
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let body = resp.text().await.unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: not JSON ({e}): {body}"))
    }

    /// The first value an instant query answers, if any.
    pub async fn scalar(&self, expr: &str) -> Option<f64> {
        let answer = self.query(expr).await;
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::process::Command::new(crate::repo_root().join("tests/cluster/prometheus.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
