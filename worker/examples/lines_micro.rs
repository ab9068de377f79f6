//! Micro check of the lines path (not a test): std.wordcount over a
//! generated 200,000-line file in 100 KB leaves, folded with merge and count.
//! `cargo run --release -p kontinuum-worker --example lines_micro`

use kontinuum_api::work::{Slice, Work};
use kontinuum_api::{BuiltinReducer, FnRef, Reducer};
use kontinuum_worker::{Ctx, execute, std_registry};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("words.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    let lines = 200_000u64;
    for i in 0..lines {
        let line: Vec<String> = (0..10)
            .map(|j| format!("{}{}", words[((i + j) % 8) as usize], (i * 7 + j) % 5000))
            .collect();
        writeln!(file, "{}", line.join(" "))?;
    }
    file.flush()?;
    drop(file);
    let bytes = std::fs::metadata(&path)?.len();
    let path = path.to_string_lossy().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ctx = Ctx::detached(Arc::new(std_registry()));
    for reducer in [BuiltinReducer::Merge, BuiltinReducer::Count] {
        let t = Instant::now();
        let mut start = 0;
        while start < bytes {
            let end = (start + 100_000).min(bytes);
            let work = Work::MapLeaf {
                function: FnRef::new("std.wordcount"),
                slice: Slice::Lines {
                    path: path.clone(),
                    start,
                    end,
                },
                reducer: Reducer::Builtin(reducer),
            };
            rt.block_on(execute(&ctx, work))?;
            start = end;
        }
        let ns = t.elapsed().as_nanos() as f64 / lines as f64;
        println!(
            "{reducer:?}: {lines} lines ({bytes} bytes) in {:?} = {ns:.0} ns/line",
            t.elapsed()
        );
    }
    Ok(())
}
