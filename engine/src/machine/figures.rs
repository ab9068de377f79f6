//! The figures metrics read, per pool and per namespace, taken in one pass
//! under the lock. Called at scrape time, not per decision: the walks over
//! leases and active futures are bounded by work in flight, never by what
//! the store holds.

use super::queue::stats_of;
use super::{IdMap, State};
use crate::observe::{FINAL_PHASES, NamespaceFigures, PoolFigures};
use kontinuum_api::ObjectKind;
use kontinuum_api::work::NodeId;
use std::collections::{BTreeMap, BTreeSet};

impl State {
    /// Every pool the engine knows and every namespace one of them is in.
    pub fn figures(&self, now: u64) -> (Vec<PoolFigures>, Vec<NamespaceFigures>) {
        let mut holders: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); self.pools.all().len()];
        let mut progress: IdMap<NodeId, u64> = IdMap::default();
        for lease in self.leases.values() {
            if let (Some(worker), Some(set)) = (&lease.worker, holders.get_mut(lease.slot as usize))
            {
                set.insert(worker);
            }
            if self.futures.contains(&lease.root) {
                *progress.entry(lease.root).or_default() += lease.progress;
            }
        }
        let mut namespaces: BTreeMap<&str, NamespaceFigures> = BTreeMap::new();
        let mut pools = Vec::with_capacity(self.pools.all().len());
        for (pool, workers) in self.pools.all().iter().zip(holders) {
            let ns = namespaces
                .entry(pool.namespace.as_str())
                .or_insert_with(|| NamespaceFigures {
                    namespace: pool.namespace.clone(),
                    ..NamespaceFigures::default()
                });
            let c = &pool.counters;
            for (k, kind) in [ObjectKind::Task, ObjectKind::Future]
                .into_iter()
                .enumerate()
            {
                for (p, phase) in FINAL_PHASES.into_iter().enumerate() {
                    let n = c.finished[k][p];
                    match ns
                        .finished
                        .iter_mut()
                        .find(|(a, b, _)| *a == kind && *b == phase)
                    {
                        Some((_, _, count)) => *count += n,
                        None if n > 0 => ns.finished.push((kind, phase, n)),
                        None => {}
                    }
                }
            }
            pools.push(PoolFigures {
                namespace: pool.namespace.clone(),
                pool: pool.name.clone(),
                stats: stats_of(pool, now),
                submitted: c.submitted,
                functions: c.functions.clone(),
                workers: workers.into_iter().map(str::to_string).collect(),
            });
        }
        for id in &self.futures {
            let Some(root) = self.roots.get(id) else {
                continue;
            };
            let Some(ns) = namespaces.get_mut(root.namespace.as_str()) else {
                continue;
            };
            // As the status shows it, less what joined through parentRef:
            // those objects count on their own.
            let done = root.done + progress.get(id).copied().unwrap_or(0);
            ns.futures_active += 1;
            ns.units_done += done;
            ns.units_total += root.total().max(done);
        }
        (pools, namespaces.into_values().collect())
    }
}
