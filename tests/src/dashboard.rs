//! Checks of the chart's Grafana dashboard: what Grafana needs of its JSON
//! ([`check`]), that it names only documented metrics ([`metric_names`],
//! [`documented_metrics`]), and, against a live Prometheus, which panels
//! come back empty ([`empty_panels`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::repo_root;

/// The dashboard shipped in the chart.
pub fn dashboard_path() -> PathBuf {
    repo_root().join("charts/kontinuum/dashboards/kontinuum.json")
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, rows' nested panels included, in order.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// One PromQL query of a panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every target's expression, by panel title and refId.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push(Query {
                    panel: p["title"].as_str().unwrap_or("?").to_owned(),
                    ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    out
}

const GRID_COLUMNS: i64 = 24;

fn uses_datasource_var(ds: &Value, var: &str) -> bool {
    let uid = ds
        .get("uid")
        .and_then(Value::as_str)
        .or_else(|| ds.as_str());
    matches!(uid, Some(u) if u == format!("${var}") || u == format!("${{{var}}}"))
}

/// Variables referenced in a string: `$name`, `${name}`, `${name:fmt}`, `[[name]]`.
pub fn variables_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let word = |from: usize| {
        let end = (from..b.len())
            .find(|&i| !(b[i].is_ascii_alphanumeric() || b[i] == b'_'))
            .unwrap_or(b.len());
        (text[from..end].to_owned(), end)
    };
    let mut i = 0;
    while i < b.len() {
        let start = match (b[i], b.get(i + 1)) {
            (b'$', Some(b'{')) | (b'[', Some(b'[')) => Some(i + 2),
            (b'$', Some(_)) => Some(i + 1),
            _ => None,
        };
        match start {
            Some(s) => {
                let (name, end) = word(s);
                if !name.is_empty() {
                    out.insert(name);
                }
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// Grafana's own variables ($__rate_interval, $__interval, $__range, ...).
fn is_builtin(name: &str) -> bool {
    name.starts_with("__")
}

/// What Grafana needs of a dashboard, as a list of problems (empty: fine):
/// unique panel ids; a gridPos inside the 24 columns for every panel and no
/// two overlapping; a `datasource` variable of type prometheus that every
/// panel and target uses; every variable a query names is defined.
pub fn check(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let vars: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let defined: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let ds_ok = vars.iter().any(|v| {
        v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"
    });
    if !ds_ok {
        problems
            .push("no template variable `datasource` of type datasource, query prometheus".into());
    }
    for v in &vars {
        let query = match &v["query"] {
            Value::String(s) => s.clone(),
            other => other["query"].as_str().unwrap_or_default().to_owned(),
        };
        let name = v["name"].as_str().unwrap_or("?");
        if v["type"] == "query" && !uses_datasource_var(&v["datasource"], "datasource") {
            problems.push(format!(
                "variable {name}: datasource is not ${{datasource}}"
            ));
        }
        for used in variables_in(&query) {
            if !is_builtin(&used) && !defined.contains(used.as_str()) {
                problems.push(format!("variable {name}: query uses undefined ${used}"));
            }
        }
    }
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for p in panels(dashboard) {
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        match p["id"].as_i64() {
            Some(id) if ids.insert(id) => {}
            Some(id) => problems.push(format!("panel {title}: id {id} is not unique")),
            None => problems.push(format!("panel {title}: no numeric id")),
        }
        let g = &p["gridPos"];
        let grid: Vec<Option<i64>> = ["x", "y", "w", "h"]
            .iter()
            .map(|k| g[*k].as_i64())
            .collect();
        match grid[..] {
            [Some(x), Some(y), Some(w), Some(h)]
                if x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= GRID_COLUMNS =>
            {
                for (other, [ox, oy, ow, oh]) in &boxes {
                    if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                        problems.push(format!("panel {title} overlaps panel {other}"));
                    }
                }
                boxes.push((title.clone(), [x, y, w, h]));
            }
            _ => problems.push(format!(
                "panel {title}: gridPos {g} is not x,y >= 0, w,h >= 1, x + w <= {GRID_COLUMNS}"
            )),
        }
        if p["type"] == "row" {
            continue;
        }
        if !uses_datasource_var(&p["datasource"], "datasource") {
            problems.push(format!("panel {title}: datasource is not ${{datasource}}"));
        }
        let targets = p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title}: no targets"));
        }
        for t in targets {
            let r = t["refId"].as_str().unwrap_or("?");
            if !uses_datasource_var(&t["datasource"], "datasource") {
                problems.push(format!(
                    "panel {title} target {r}: datasource is not ${{datasource}}"
                ));
            }
            let expr = t["expr"].as_str().unwrap_or_default();
            if expr.trim().is_empty() {
                problems.push(format!("panel {title} target {r}: empty expr"));
            }
            for used in variables_in(expr) {
                if !is_builtin(&used) && !defined.contains(used.as_str()) {
                    problems.push(format!(
                        "panel {title} target {r}: undefined variable ${used}"
                    ));
                }
            }
            if let Err(e) = metric_names(&substitute(expr, &BTreeMap::new(), "1m")) {
                problems.push(format!("panel {title} target {r}: {e}"));
            }
        }
    }
    problems
}

/// The metric names a PromQL expression selects, parsed by promql-parser
/// (Prometheus's grammar). Grafana's variables must be substituted first
/// (see [`substitute`]); a query that does not parse, or that selects
/// series without naming a metric, is an error.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    use promql_parser::parser::{self, Expr};
    use promql_parser::util::{ExprVisitor, walk_expr};

    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let selector = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let name = selector
                .name
                .clone()
                .ok_or_else(|| format!("a selector without a metric name: {selector}"))?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let ast = parser::parse(expr).map_err(|e| format!("not PromQL ({e}): {expr}"))?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &ast)?;
    Ok(names.0)
}

/// Metric names and types from the tables of docs/metrics.md: rows whose
/// first cell is a backquoted `kontinuum_*` name and second cell its type.
pub fn documented_metrics(markdown: &str) -> BTreeMap<String, String> {
    crate::metrics::documented(markdown)
        .into_iter()
        .map(|(name, row)| (name, row.kind))
        .collect()
}

/// Names used that docs/metrics.md does not list. A histogram's `_bucket`,
/// `_sum` and `_count` series count as the histogram.
pub fn undocumented(used: &BTreeSet<String>, documented: &BTreeMap<String, String>) -> Vec<String> {
    used.iter()
        .filter(|name| {
            if documented.contains_key(*name) {
                return false;
            }
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s));
            base.is_none_or(|b| documented.get(b).is_none_or(|k| k != "histogram"))
        })
        .cloned()
        .collect()
}

/// A query with Grafana's variables replaced: the ones given by `values`,
/// `$__rate_interval` and `$__interval` by `interval`, any other variable
/// by `.*` (which its `=~` matchers read as "all").
pub fn substitute(expr: &str, values: &BTreeMap<String, String>, interval: &str) -> String {
    let mut out = expr.to_owned();
    let mut names: Vec<String> = variables_in(expr).into_iter().collect();
    // Longest first, so $pool does not eat the start of $pools.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = match name.as_str() {
            "__rate_interval" | "__interval" => interval.to_owned(),
            n => values.get(n).cloned().unwrap_or_else(|| ".*".to_owned()),
        };
        for form in [
            format!("${{{name}}}"),
            format!("[[{name}]]"),
            format!("${name}"),
        ] {
            out = out.replace(&form, &value);
        }
    }
    out
}

/// A query that came back with no series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyPanel {
    pub panel: String,
    pub ref_id: String,
    /// The query as sent, variables substituted.
    pub query: String,
}

/// The number of series in a Prometheus `/api/v1/query` answer, or the
/// error it reports.
pub fn series_in_answer(answer: &Value) -> Result<usize, String> {
    if answer["status"] != "success" {
        return Err(format!(
            "{}: {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("no error message")
        ));
    }
    match &answer["data"]["result"] {
        Value::Array(series) => Ok(series.len()),
        // A scalar or string result is one value.
        Value::Null => Err("the answer has no data.result".to_owned()),
        _ => Ok(1),
    }
}

/// Runs every query of the dashboard against the Prometheus at `base_url`
/// (e.g. `http://127.0.0.1:9090`) at the current time, and returns the
/// queries that returned no series. A query Prometheus refuses is an error:
/// a broken panel is worse than an empty one.
pub async fn empty_panels(
    dashboard: &Value,
    base_url: &str,
    values: &BTreeMap<String, String>,
    interval: &str,
) -> Result<Vec<EmptyPanel>, String> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/query", base_url.trim_end_matches('/'));
    let mut empty = Vec::new();
    for q in queries(dashboard) {
        let query = substitute(&q.expr, values, interval);
        let what = format!("panel {} target {} ({query})", q.panel, q.ref_id);
        let response = client
            .get(&url)
            .query(&[("query", query.as_str())])
            .send()
            .await
            .map_err(|e| format!("{what}: cannot query {url}: {e}"))?;
        let body = response
            .text()
            .await
            .map_err(|e| format!("{what}: cannot read the answer: {e}"))?;
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{what}: the answer is not JSON ({e}): {body}"))?;
        if series_in_answer(&answer).map_err(|e| format!("{what}: {e}"))? == 0 {
            empty.push(EmptyPanel {
                panel: q.panel,
                ref_id: q.ref_id,
                query,
            });
        }
    }
    Ok(empty)
}
