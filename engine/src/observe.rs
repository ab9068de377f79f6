//! What the engine counts for metrics, and the figures it hands out when
//! asked ([`crate::Engine::figures`]). The engine knows nothing of
//! Prometheus: a metrics layer turns [`EngineFigures`] into series at scrape
//! time. Counting happens inside decisions the engine makes anyway, under
//! the lock it already holds: an increment and a bucket search per attempt,
//! no allocation once a pool has seen its functions.

use crate::public::PoolStats;
use kontinuum_api::{ObjectKind, Phase};
use std::collections::HashMap;

/// Upper bounds (seconds) of the attempt duration buckets: 1 ms … 10 min.
pub const TASK_DURATION_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// Upper bounds (seconds) of the store's fsync duration buckets.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Distinct function names counted per pool; later ones count as
/// [`OTHER_FUNCTION`], so a pool that calls generated names cannot grow the
/// label set without bound.
pub const MAX_FUNCTIONS_PER_POOL: usize = 32;

/// The function label of everything beyond [`MAX_FUNCTIONS_PER_POOL`].
pub const OTHER_FUNCTION: &str = "other";

/// Counts per bucket, as Prometheus histograms keep them.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative); one more than `bounds`:
    /// the last counts what exceeds every bound.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        // A bucket counts values up to and including its bound.
        let at = self.bounds.partition_point(|b| *b < value);
        self.counts[at] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Observations at or below each bound, in order (Prometheus's `le`).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .take(self.bounds.len())
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }
}

/// How one attempt (a lease) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed, and another attempt is scheduled.
    Retried,
    /// Failed for good.
    Failed,
    /// Its tree ended (cancelled, or failed elsewhere) while it ran.
    Cancelled,
    /// Its lease expired or its timeout passed.
    Timeout,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Retried,
        AttemptOutcome::Failed,
        AttemptOutcome::Cancelled,
        AttemptOutcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Timeout => "timeout",
        }
    }
}

/// Attempts of one function in one pool.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionFigures {
    pub function: String,
    /// Attempts by outcome, in the order of [`AttemptOutcome::ALL`].
    pub outcomes: [u64; 5],
    /// Lease to completion, in seconds.
    pub duration: Histogram,
}

/// The final phases an object can reach, in the order counters keep them.
pub const FINAL_PHASES: [Phase; 4] = [
    Phase::Succeeded,
    Phase::Failed,
    Phase::Cancelled,
    Phase::Merged,
];

const KINDS: [ObjectKind; 2] = [ObjectKind::Task, ObjectKind::Future];

/// What one (namespace, pool) has counted since the engine opened.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolCounters {
    /// Nodes that run a function (calls, map leaves) created.
    pub submitted: u64,
    pub functions: Vec<FunctionFigures>,
    index: HashMap<String, u16>,
    other: Option<u16>,
    /// Objects that reached a final phase: [kind][phase].
    pub finished: [[u64; 4]; 2],
}

impl PoolCounters {
    /// The counters' index of `function` (looked up once per lease).
    pub fn function(&mut self, function: &str) -> u16 {
        if let Some(&i) = self.index.get(function) {
            return i;
        }
        if self.index.len() >= MAX_FUNCTIONS_PER_POOL {
            if let Some(i) = self.other {
                return i;
            }
            let i = self.push(OTHER_FUNCTION);
            self.other = Some(i);
            return i;
        }
        let i = self.push(function);
        self.index.insert(function.to_string(), i);
        i
    }

    fn push(&mut self, function: &str) -> u16 {
        self.functions.push(FunctionFigures {
            function: function.to_string(),
            outcomes: [0; 5],
            duration: Histogram::new(&TASK_DURATION_BUCKETS),
        });
        (self.functions.len() - 1) as u16
    }

    pub fn attempt(&mut self, function: u16, outcome: AttemptOutcome, seconds: f64) {
        if let Some(f) = self.functions.get_mut(function as usize) {
            let at = AttemptOutcome::ALL
                .iter()
                .position(|o| *o == outcome)
                .unwrap_or(0);
            f.outcomes[at] += 1;
            f.duration.observe(seconds);
        }
    }

    pub fn finished(&mut self, kind: ObjectKind, phase: Phase) {
        let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        if let Some(p) = FINAL_PHASES.iter().position(|x| *x == phase) {
            self.finished[k][p] += 1;
        }
    }
}

/// One (namespace, pool) at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolFigures {
    pub namespace: String,
    pub pool: String,
    pub stats: PoolStats,
    /// Nodes that run a function (calls, map leaves) created since the
    /// engine opened.
    pub submitted: u64,
    pub functions: Vec<FunctionFigures>,
    /// Workers holding at least one lease of this pool now, by name.
    pub workers: Vec<String>,
}

/// One namespace at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceFigures {
    pub namespace: String,
    /// HierarchicalFutures not yet final.
    pub futures_active: u64,
    /// Sums over the active futures of their progress.
    pub units_done: u64,
    pub units_total: u64,
    /// Objects that reached a final phase since the engine opened.
    pub finished: Vec<(ObjectKind, Phase, u64)>,
}

/// Everything the engine counts, as of one call of
/// [`crate::Engine::figures`].
#[derive(Clone, Debug, PartialEq)]
pub struct EngineFigures {
    pub pools: Vec<PoolFigures>,
    pub namespaces: Vec<NamespaceFigures>,
    /// The store's fsyncs, in seconds.
    pub fsync: Histogram,
    /// The store's size on disk, when it could be read.
    pub store_bytes: Option<u64>,
}
