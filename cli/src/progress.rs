//! Live progress on stderr: indicatif bars on a terminal, otherwise a plain
//! line per unfinished object every few seconds (logs and CI stay readable).
//! Many tasks share one line, so a run of a thousand tasks stays readable.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// More tasks than this are shown as one line.
const MAX_TASK_ROWS: usize = 5;

/// One line of progress: one object, or all the tasks when there are many.
enum Row {
    One { name: String, index: usize },
    Tasks { indices: Vec<usize> },
}

impl Row {
    fn label(&self) -> String {
        match self {
            Row::One { name, .. } => name.clone(),
            Row::Tasks { indices } => format!("{} tasks", indices.len()),
        }
    }
}

pub struct Progress {
    rows: Vec<Row>,
    mode: Mode,
}

enum Mode {
    Bars {
        _multi: MultiProgress,
        bars: Vec<ProgressBar>,
    },
    Plain {
        last: Instant,
    },
}

fn rows(names: &[String]) -> Vec<Row> {
    let tasks: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("task/"))
        .collect();
    let grouped = tasks.len() > MAX_TASK_ROWS;
    let mut rows: Vec<Row> = names
        .iter()
        .enumerate()
        // WorkerPools run nothing here: no line for them.
        .filter(|(_, n)| !n.starts_with("workerpool/"))
        .filter(|(_, n)| !(grouped && n.starts_with("task/")))
        .map(|(index, name)| Row::One {
            name: name.clone(),
            index,
        })
        .collect();
    if grouped {
        rows.push(Row::Tasks { indices: tasks });
    }
    rows
}

impl Progress {
    /// `names`: one per object (`kind/name`), in the order statuses will be given.
    pub fn new(names: &[String]) -> Progress {
        let rows = rows(names);
        let mode = if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let width = rows.iter().map(|r| r.label().len()).max().unwrap_or(0);
            let bars = rows
                .iter()
                .map(|row| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_prefix(format!("{:width$}", row.label()));
                    bar.set_style(spinner_style());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                })
                .collect();
            Mode::Bars {
                _multi: multi,
                bars,
            }
        } else {
            Mode::Plain {
                last: Instant::now(),
            }
        };
        Progress { rows, mode }
    }

    /// `statuses[i]` is the latest status of object i (None: no status yet).
    pub fn update(&mut self, statuses: &[Option<Value>]) {
        match &mut self.mode {
            Mode::Bars { bars, .. } => {
                for (bar, row) in bars.iter().zip(&self.rows) {
                    update_bar(bar, row, statuses);
                }
            }
            Mode::Plain { last } => {
                if last.elapsed() < PLAIN_EVERY {
                    return;
                }
                *last = Instant::now();
                for row in &self.rows {
                    if let Some(line) = plain_line(row, statuses) {
                        eprintln!("{}: {line}", row.label());
                    }
                }
            }
        }
    }

    /// Leaves the bars at their final state.
    pub fn finish(&mut self) {
        if let Mode::Bars { bars, .. } = &self.mode {
            for bar in bars {
                bar.finish();
            }
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {prefix}  [{bar:30}] {percent:>3}% {human_pos}/{human_len}  {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn update_bar(bar: &ProgressBar, row: &Row, statuses: &[Option<Value>]) {
    let (done, total, message, finished) = match row {
        Row::One { index, .. } => {
            let Some(status) = statuses.get(*index).and_then(Option::as_ref) else {
                return;
            };
            let p = &status["progress"];
            let (done, total) = (p["done"].as_u64(), p["total"].as_u64());
            let phase = status["phase"].as_str().unwrap_or("Pending").to_string();
            (done, total, phase, is_final(status))
        }
        Row::Tasks { indices } => {
            let summary = TaskSummary::of(indices, statuses);
            let finished = summary.finals == indices.len();
            let total = indices.len() as u64;
            (
                Some(summary.finals as u64),
                Some(total),
                summary.phases(),
                finished,
            )
        }
    };
    if let (Some(done), Some(total)) = (done, total) {
        if bar.length().is_none() {
            bar.set_style(bar_style());
        }
        bar.set_length(total);
        bar.set_position(done);
    }
    bar.set_message(message);
    if finished && !bar.is_finished() {
        bar.finish();
    }
}

/// What a plain progress line says after the label; `None` once final.
fn plain_line(row: &Row, statuses: &[Option<Value>]) -> Option<String> {
    match row {
        Row::One { index, .. } => {
            let status = statuses.get(*index)?.as_ref().filter(|s| !is_final(s))?;
            Some(plain(status))
        }
        Row::Tasks { indices } => {
            let summary = TaskSummary::of(indices, statuses);
            (summary.finals < indices.len()).then(|| {
                format!(
                    "{}/{} final ({})",
                    summary.finals,
                    indices.len(),
                    summary.phases()
                )
            })
        }
    }
}

/// Tasks of a group by phase.
struct TaskSummary {
    finals: usize,
    /// Phases of the unfinished ones, with their counts.
    open: BTreeMap<String, usize>,
}

impl TaskSummary {
    fn of(indices: &[usize], statuses: &[Option<Value>]) -> TaskSummary {
        let mut summary = TaskSummary {
            finals: 0,
            open: BTreeMap::new(),
        };
        for status in indices.iter().filter_map(|&i| statuses.get(i)?.as_ref()) {
            if is_final(status) {
                summary.finals += 1;
            } else {
                let phase = status["phase"].as_str().unwrap_or("Pending").to_string();
                *summary.open.entry(phase).or_default() += 1;
            }
        }
        summary
    }

    /// `3 Queued, 1 Running`.
    fn phases(&self) -> String {
        let parts: Vec<String> = self.open.iter().map(|(p, n)| format!("{n} {p}")).collect();
        parts.join(", ")
    }
}

fn is_final(status: &Value) -> bool {
    matches!(
        status["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Cancelled" | "Merged")
    )
}

/// `41% 4100000/10000000` for a future, the phase for a task.
fn plain(status: &Value) -> String {
    let p = &status["progress"];
    match (p["done"].as_u64(), p["total"].as_u64()) {
        (Some(done), Some(total)) if total > 0 => {
            let percent = (done.min(total) as u128 * 100 / total as u128) as u64;
            format!("{percent}% {done}/{total}")
        }
        _ => status["phase"].as_str().unwrap_or("Pending").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_lines() {
        let s = json!({"phase": "Running", "progress": {"done": 4100000, "total": 10000000}});
        assert_eq!(plain(&s), "41% 4100000/10000000");
        assert_eq!(plain(&json!({"phase": "Queued"})), "Queued");
        assert!(is_final(&json!({"phase": "Merged"})));
    }

    #[test]
    fn many_tasks_share_a_line() {
        let mut names: Vec<String> = (0..7).map(|i| format!("task/t{i}")).collect();
        names.push("future/f".into());
        names.push("workerpool/default".into());
        let rows = rows(&names);
        let labels: Vec<String> = rows.iter().map(Row::label).collect();
        assert_eq!(labels, ["future/f", "7 tasks"]);
        let phase = |p: &str| Some(json!({"phase": p}));
        let mut statuses = vec![phase("Succeeded"), phase("Merged"), phase("Running")];
        statuses.extend([phase("Queued"), phase("Queued"), phase("Queued"), None]);
        statuses.push(Some(
            json!({"phase": "Running", "progress": {"done": 1, "total": 4}}),
        ));
        statuses.push(None);
        assert_eq!(plain_line(&rows[0], &statuses).unwrap(), "25% 1/4");
        assert_eq!(
            plain_line(&rows[1], &statuses).unwrap(),
            "2/7 final (3 Queued, 1 Running)"
        );
        let few: Vec<String> = names[5..].to_vec();
        let labels: Vec<String> = super::rows(&few).iter().map(Row::label).collect();
        assert_eq!(labels, ["task/t5", "task/t6", "future/f"]);
    }
}
