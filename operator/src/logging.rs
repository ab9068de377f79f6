//! What `RUST_LOG` (the chart's `logLevel`) means for the operator.
//!
//! A bare level raises Kontinuum's own crates to it and leaves the
//! libraries at their quiet default: `debug` for the whole process is
//! thousands of lines a minute of the store's and the HTTP stack's
//! internals, which nobody reading the operator's logs asked for. A level
//! below the default (`warn`, `error`, `off`) applies to everything, and
//! anything that names a target (contains `=` or `,`) is a full filter,
//! taken as written.

/// The filter when nothing is set.
pub const DEFAULT: &str = "info,kube_runtime=warn,kube_client=warn";

/// The `tracing_subscriber::EnvFilter` directives for a `RUST_LOG` value
/// (None: unset). Targets match by prefix, so `kontinuum=` covers every
/// `kontinuum_*` crate.
pub fn directives(rust_log: Option<&str>) -> String {
    let Some(spec) = rust_log.map(str::trim).filter(|s| !s.is_empty()) else {
        return DEFAULT.to_string();
    };
    if spec.contains('=') || spec.contains(',') {
        return spec.to_string();
    }
    match spec.to_ascii_lowercase().as_str() {
        "info" => DEFAULT.to_string(),
        level @ ("debug" | "trace") => format!("{DEFAULT},kontinuum={level}"),
        // warn, error, off, or a word the filter will refuse by itself.
        _ => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::EnvFilter;

    /// Whether `filter` lets an event of `target` at `level` through.
    fn passes(filter: &str, target: &str, level: tracing::Level) -> bool {
        use tracing_subscriber::layer::SubscriberExt;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = seen.clone();
        let probe = tracing_subscriber::fmt::layer()
            .with_writer(move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                std::io::sink()
            })
            .with_filter(EnvFilter::new(filter));
        let subscriber = tracing_subscriber::registry().with(probe);
        tracing::subscriber::with_default(subscriber, || {
            // Events with a target chosen at run time: one callsite per
            // target and level the tests use.
            macro_rules! at {
                ($t:literal) => {
                    match level {
                        tracing::Level::TRACE => tracing::trace!(target: $t, "x"),
                        tracing::Level::DEBUG => tracing::debug!(target: $t, "x"),
                        tracing::Level::INFO => tracing::info!(target: $t, "x"),
                        tracing::Level::WARN => tracing::warn!(target: $t, "x"),
                        tracing::Level::ERROR => tracing::error!(target: $t, "x"),
                    }
                };
            }
            match target {
                "kontinuum_operator::run" => at!("kontinuum_operator::run"),
                "kontinuum_engine::store" => at!("kontinuum_engine::store"),
                "kontinuum_server::routes" => at!("kontinuum_server::routes"),
                "sled::pagecache" => at!("sled::pagecache"),
                "hyper_util::client" => at!("hyper_util::client"),
                "kube_client::client" => at!("kube_client::client"),
                other => panic!("no callsite for {other}"),
            }
        });
        seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    use tracing::Level;
    use tracing_subscriber::Layer;

    #[test]
    fn a_bare_debug_is_for_kontinuums_crates_only() {
        let debug = directives(Some("debug"));
        for ours in [
            "kontinuum_operator::run",
            "kontinuum_engine::store",
            "kontinuum_server::routes",
        ] {
            assert!(passes(&debug, ours, Level::DEBUG), "{ours}");
        }
        for theirs in [
            "sled::pagecache",
            "hyper_util::client",
            "kube_client::client",
        ] {
            assert!(!passes(&debug, theirs, Level::DEBUG), "{theirs}");
        }
        assert!(passes(&debug, "sled::pagecache", Level::INFO));
        assert!(!passes(&debug, "kube_client::client", Level::INFO));
        let trace = directives(Some("TRACE"));
        assert!(passes(&trace, "kontinuum_engine::store", Level::TRACE));
        assert!(!passes(&trace, "sled::pagecache", Level::DEBUG));
    }

    #[test]
    fn quieter_levels_and_full_filters_are_taken_as_written() {
        assert_eq!(directives(None), DEFAULT);
        assert_eq!(directives(Some("  ")), DEFAULT);
        assert_eq!(directives(Some("info")), DEFAULT);
        assert_eq!(directives(Some("warn")), "warn");
        assert!(!passes(
            &directives(Some("warn")),
            "kontinuum_operator::run",
            Level::INFO
        ));
        assert_eq!(directives(Some("error")), "error");
        let full = "debug,sled=info";
        assert_eq!(directives(Some(full)), full);
        assert!(passes(
            &directives(Some(full)),
            "hyper_util::client",
            Level::DEBUG
        ));
        assert_eq!(directives(Some("sled=debug")), "sled=debug");
        assert!(passes(
            &directives(Some("sled=debug")),
            "sled::pagecache",
            Level::DEBUG
        ));
    }
}
