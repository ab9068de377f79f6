//! Live progress on stderr: indicatif bars on a terminal, otherwise a plain
//! line per unfinished object every few seconds (logs and CI stay readable).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const PLAIN_EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    names: Vec<String>,
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

impl Progress {
    /// One entry per object, in the order statuses will be given.
    pub fn new(names: Vec<String>) -> Progress {
        let mode = if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            let bars = names
                .iter()
                .map(|name| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_prefix(format!("{name:width$}"));
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
        Progress { names, mode }
    }

    /// `statuses[i]` is the latest status of object i (None: no status yet).
    pub fn update(&mut self, statuses: &[Option<Value>]) {
        match &mut self.mode {
            Mode::Bars { bars, .. } => {
                for (bar, status) in bars.iter().zip(statuses) {
                    update_bar(bar, status.as_ref());
                }
            }
            Mode::Plain { last } => {
                if last.elapsed() < PLAIN_EVERY {
                    return;
                }
                *last = Instant::now();
                for (name, status) in self.names.iter().zip(statuses) {
                    if let Some(status) = status.as_ref().filter(|s| !is_final(s)) {
                        eprintln!("{name}: {}", plain(status));
                    }
                }
            }
        }
    }

    /// Leaves the bars at their final state (or clears nothing in plain mode).
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

fn update_bar(bar: &ProgressBar, status: Option<&Value>) {
    let Some(status) = status else { return };
    let phase = status["phase"].as_str().unwrap_or("Pending");
    if let (Some(done), Some(total)) = (
        status["progress"]["done"].as_u64(),
        status["progress"]["total"].as_u64(),
    ) {
        if bar.length().is_none() {
            bar.set_style(bar_style());
        }
        bar.set_length(total);
        bar.set_position(done);
    }
    bar.set_message(phase.to_string());
    if is_final(status) && !bar.is_finished() {
        bar.finish();
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
}
