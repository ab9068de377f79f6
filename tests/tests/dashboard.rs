//! The shipped Grafana dashboard: valid for Grafana, and built only from the
//! metrics docs/metrics.md lists. Each check is also shown to catch the
//! mistake it is for, on a damaged copy.

use std::collections::{BTreeMap, BTreeSet};

use kontinuum_e2e::dashboard::{
    check, dashboard_path, documented_metrics, load, metric_names, panels, queries,
    series_in_answer, substitute, undocumented,
};
use kontinuum_e2e::repo_root;
use serde_json::{Value, json};

fn documented() -> BTreeMap<String, String> {
    let path = repo_root().join("docs/metrics.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    documented_metrics(&text)
}

#[test]
fn the_dashboard_is_valid_for_grafana() {
    let problems = check(&load(&dashboard_path()));
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

/// The metrics of every panel query, variables substituted.
fn used_metrics(dashboard: &Value) -> BTreeSet<String> {
    queries(dashboard)
        .iter()
        .flat_map(|q| {
            metric_names(&substitute(&q.expr, &BTreeMap::new(), "1m"))
                .unwrap_or_else(|e| panic!("panel {}: {e}", q.panel))
        })
        .collect()
}

#[test]
fn the_dashboard_uses_only_documented_metrics() {
    let dashboard = load(&dashboard_path());
    let docs = documented();
    assert!(docs.len() >= 19, "docs/metrics.md lists only {docs:?}");
    let used = used_metrics(&dashboard);
    let missing = undocumented(&used, &docs);
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
    // The variables' queries count too: label_values(SELECTOR, LABEL).
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(q) = v["query"]["query"].as_str() {
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(sel, _)| sel)
                .unwrap_or_else(|| {
                    panic!("variable query {q} is not label_values(SELECTOR, LABEL)")
                });
            let names = metric_names(&substitute(selector, &BTreeMap::new(), "1m"))
                .unwrap_or_else(|e| panic!("variable query {q}: {e}"));
            assert!(undocumented(&names, &docs).is_empty(), "variable query {q}");
        }
    }
}

#[test]
fn the_dashboard_covers_what_operators_look_at() {
    let dashboard = load(&dashboard_path());
    let used = used_metrics(&dashboard);
    for m in [
        "kontinuum_tasks_completed_total",
        "kontinuum_queue_depth",
        "kontinuum_pool_workers",
        "kontinuum_pool_replicas_desired",
        "kontinuum_pool_replicas",
        "kontinuum_pool_demand",
        "kontinuum_futures_active",
        "kontinuum_future_units_done",
        "kontinuum_task_duration_seconds_bucket",
        "kontinuum_reconcile_errors_total",
        "kontinuum_reconcile_duration_seconds_bucket",
        "kontinuum_status_patches_total",
        "kontinuum_store_fsync_duration_seconds_bucket",
        "kontinuum_store_size_bytes",
    ] {
        assert!(used.contains(m), "no panel shows {m}");
    }
    let vars: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "namespace", "pool"]);
}

#[test]
fn metric_names_come_from_the_parsed_query() {
    let names = |e: &str| metric_names(e).map(|n| n.into_iter().collect::<Vec<_>>());
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, function) (rate(kontinuum_task_duration_seconds_bucket{namespace=~".*",pool="a{b}"}[1m])))"#
        ),
        Ok(vec!["kontinuum_task_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        names(
            "sum(a_total) by (pod) / on (pod) group_left (x) b offset 5m > bool 1e3 or vector(0)"
        ),
        Ok(vec!["a_total".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        names(r#"max(x_bytes) unless y{z="sum(q)"}"#),
        Ok(vec!["x_bytes".to_owned(), "y".to_owned()])
    );
    let err = names("sum(rate(x[1m])").unwrap_err();
    assert!(err.contains("not PromQL"), "{err}");
    let err = names(r#"sum({job="x"})"#).unwrap_err();
    assert!(err.contains("without a metric name"), "{err}");
}

#[test]
fn histogram_series_count_as_their_histogram() {
    let docs: BTreeMap<String, String> = [
        ("kontinuum_a_seconds".to_owned(), "histogram".to_owned()),
        ("kontinuum_b".to_owned(), "gauge".to_owned()),
    ]
    .into();
    let used: BTreeSet<String> = [
        "kontinuum_a_seconds_bucket",
        "kontinuum_a_seconds_count",
        "kontinuum_b_sum",
        "kontinuum_c",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        undocumented(&used, &docs),
        ["kontinuum_b_sum", "kontinuum_c"]
    );
}

/// A copy of the shipped dashboard changed by `edit`, and its problems.
fn problems_after(edit: impl FnOnce(&mut Value)) -> String {
    let mut d = load(&dashboard_path());
    edit(&mut d);
    check(&d).join("\n")
}

fn first_panel(d: &mut Value) -> &mut Value {
    let i = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .position(|p| p["type"] != "row")
        .expect("a panel");
    &mut d["panels"][i]
}

#[test]
fn the_checker_catches_each_kind_of_mistake() {
    let p = problems_after(|d| {
        let id = d["panels"][0]["id"].clone();
        d["panels"][1]["id"] = id;
    });
    assert!(p.contains("is not unique"), "{p}");

    let p = problems_after(|d| first_panel(d)["gridPos"]["x"] = json!(20));
    assert!(p.contains("gridPos"), "{p}");

    let p = problems_after(|d| {
        let g = d["panels"][1]["gridPos"].clone();
        d["panels"][2]["gridPos"] = g;
    });
    assert!(p.contains("overlaps"), "{p}");

    let p = problems_after(|d| d["templating"]["list"][0]["type"] = json!("custom"));
    assert!(p.contains("no template variable `datasource`"), "{p}");

    let p = problems_after(|d| {
        first_panel(d)["datasource"] = json!({"type": "prometheus", "uid": "abc"})
    });
    assert!(p.contains("datasource is not ${datasource}"), "{p}");

    let p = problems_after(|d| first_panel(d)["targets"][0]["datasource"] = Value::Null);
    assert!(p.contains("target A: datasource"), "{p}");

    let p = problems_after(|d| {
        let t = &mut first_panel(d)["targets"][0]["expr"];
        *t = json!(t.as_str().unwrap().replace("$pool", "$pools"));
    });
    assert!(p.contains("undefined variable $pools"), "{p}");

    let p = problems_after(|d| {
        let t = &mut first_panel(d)["targets"][0]["expr"];
        *t = json!(format!("{})", t.as_str().unwrap()));
    });
    assert!(p.contains("target A: not PromQL"), "{p}");
}

#[test]
fn variables_are_substituted_for_the_live_check() {
    let values: BTreeMap<String, String> = [("namespace".to_owned(), "team-a".to_owned())].into();
    let q = substitute(
        r#"sum(rate(x{namespace=~"$namespace",pool=~"${pool}"}[$__rate_interval]))"#,
        &values,
        "1m",
    );
    assert_eq!(q, r#"sum(rate(x{namespace=~"team-a",pool=~".*"}[1m]))"#);
    // Every shipped query comes out free of variables.
    let d = load(&dashboard_path());
    for q in queries(&d) {
        let s = substitute(&q.expr, &BTreeMap::new(), "1m");
        assert!(!s.contains('$'), "{} {}: {s}", q.panel, q.ref_id);
    }
    assert!(panels(&d).len() > 15);
}

#[test]
fn prometheus_answers_are_counted_or_refused() {
    let ok = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}});
    assert_eq!(series_in_answer(&ok), Ok(1));
    let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
    assert_eq!(series_in_answer(&empty), Ok(0));
    let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert_eq!(
        series_in_answer(&bad),
        Err("bad_data: parse error".to_owned())
    );
}
