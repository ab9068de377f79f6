//! Maps over data only workers can read start with a plan. The engine never
//! opens users' files: in a cluster they are mounted in the workers' pods,
//! not in the operator's. So the root of such a map is first a `Plan` node,
//! leased to a worker of the future's pool like any work; the worker's
//! answer (a [`SourcePlan`]) gives the map its size and shard width, and
//! the root becomes the Split or Leaf it is for every other source. A
//! failed plan (no such file, no permission) fails the tree with the
//! worker's message through the usual retry path.

use super::{LeaseInfo, State, Tx, corrupt};
use crate::error::EngineError;
use crate::records::{Body, MapSourceKind, NodeState};
use crate::store::Store;
use kontinuum_api::limits::MAX_LISTED_OBJECTS;
use kontinuum_api::work::{PLAN_FUNCTION, SourcePlan};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a plan makes of a map: its positions, the shard width in
/// positions, and for objects the listing the leaves read from.
#[derive(Debug, PartialEq)]
pub(super) struct Shape {
    pub units: u64,
    pub shard_units: u64,
    pub listing: Option<Vec<Value>>,
}

/// The map's shape from a worker's plan, or why the plan does not fit the
/// source (a worker's bug: the message says what was expected).
pub(super) fn shape(source: &MapSourceKind, shard: u64, plan: SourcePlan) -> Result<Shape, String> {
    let by_lines = shard.saturating_mul(plan.avg_line_bytes.max(1));
    match (source, plan.objects) {
        (MapSourceKind::Lines { .. }, None) => Ok(Shape {
            units: plan.bytes,
            shard_units: by_lines,
            listing: None,
        }),
        (MapSourceKind::Objects { store, lines, .. }, Some(objects)) => {
            if objects.len() > MAX_LISTED_OBJECTS {
                return Err(format!(
                    "a listing of {} objects, over the {MAX_LISTED_OBJECTS} one map may hold",
                    objects.len()
                ));
            }
            let mut start = 0u64;
            let mut listing = Vec::with_capacity(objects.len());
            for o in objects {
                let mut item = json!({"key": o.key, "size": o.size, "etag": o.etag});
                if *lines {
                    item["start"] = json!(start);
                    start = start.saturating_add(o.size);
                } else {
                    item["url"] = json!(store.url(&o.key));
                }
                listing.push(item);
            }
            let (units, shard_units) = if *lines {
                (start, by_lines)
            } else {
                (listing.len() as u64, shard)
            };
            Ok(Shape {
                units,
                shard_units,
                listing: Some(listing),
            })
        }
        (MapSourceKind::Lines { .. }, Some(_)) => Err("a listing for a file".into()),
        (_, None) => Err("no listing of the objects".into()),
        _ => Err("a plan for a source that needs none".into()),
    }
}

/// The map's first body once its size is known.
pub(super) fn first_body(units: u64, shard_units: u64) -> Body {
    let (start, end) = (0, units);
    if end <= shard_units {
        Body::Leaf { start, end }
    } else {
        Body::Split { start, end }
    }
}

impl State {
    /// A plan that is not one fails the tree for good (see refuse_answer).
    fn refuse_plan(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        problem: &str,
    ) -> Result<(), EngineError> {
        let message = format!(
            "{PLAN_FUNCTION}: the worker's answer is not a plan \
             ({{\"bytes\": N, \"avgLineBytes\": N, \"objects\": [...] for objects}}): {problem}"
        );
        self.refuse_answer(tx, store, lease, message)
    }

    /// A worker answered the plan of the lease's root node.
    pub(super) fn planned(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        shard: u64,
        value: Value,
    ) -> Result<(), EngineError> {
        let plan: SourcePlan = match serde_json::from_value(value) {
            Ok(plan) => plan,
            Err(e) => return self.refuse_plan(tx, store, lease, &e.to_string()),
        };
        let source = self
            .root(lease.root)?
            .map
            .as_ref()
            .map(|m| m.source.clone())
            .ok_or_else(|| corrupt("root", "a plan without a map"))?;
        let shape = match shape(&source, shard, plan) {
            Ok(shape) => shape,
            Err(problem) => return self.refuse_plan(tx, store, lease, &problem),
        };
        let body = first_body(shape.units, shape.shard_units);
        let is_leaf = matches!(body, Body::Leaf { .. });
        if let Some(listing) = shape.listing {
            tx.writes.put_items(lease.root, &listing)?;
            self.items.insert(lease.root, Arc::new(listing));
        }
        let root = self.root_mut(lease.root)?;
        if let Some(map) = root.map.as_mut() {
            map.shard_units = shape.shard_units;
        }
        root.known_total += shape.units;
        if let Some(declared) = root.declared_total.as_mut() {
            *declared += shape.units;
        }
        let slot = root.slot;
        tx.dirty_roots.insert(lease.root);
        let node = self.node_mut(lease.node)?;
        node.body = body;
        node.weight = shape.units;
        // The plan was not an attempt of the map: its retries stay whole.
        node.attempts = 0;
        node.error = None;
        if is_leaf {
            self.pools.counters(slot).submitted += 1;
        }
        self.set_state(tx, lease.node, NodeState::Queued)?;
        self.write_node(tx, lease.node);
        self.enqueue(tx, lease.node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontinuum_api::work::{ObjectEntry, StoreRef};

    fn lines() -> MapSourceKind {
        MapSourceKind::Lines {
            path: "/data/x.txt".into(),
        }
    }

    fn objects(lines: bool) -> MapSourceKind {
        MapSourceKind::Objects {
            store: StoreRef {
                bucket: "b".into(),
                endpoint: None,
                region: None,
            },
            key: "p/".into(),
            lines,
        }
    }

    fn plan(bytes: u64, avg: u64, objects: Option<Vec<ObjectEntry>>) -> SourcePlan {
        SourcePlan {
            bytes,
            avg_line_bytes: avg,
            objects,
        }
    }

    fn listing() -> Vec<ObjectEntry> {
        [("p/a", 100), ("p/b", 0), ("p/c", 50)]
            .into_iter()
            .map(|(key, size)| ObjectEntry {
                key: key.into(),
                size,
                etag: format!("e-{key}"),
            })
            .collect()
    }

    #[test]
    fn a_file_is_sized_in_bytes_and_sharded_by_lines_times_their_mean_length() {
        let s = shape(&lines(), 100, plan(901, 9, None)).unwrap();
        assert_eq!((s.units, s.shard_units, s.listing), (901, 900, None));
        assert_eq!(first_body(901, 900), Body::Split { start: 0, end: 901 });
        assert_eq!(first_body(900, 900), Body::Leaf { start: 0, end: 900 });
        assert_eq!(first_body(0, 4), Body::Leaf { start: 0, end: 0 });
        // A mean line length of 0 counts as 1 byte.
        assert_eq!(
            shape(&lines(), 4, plan(10, 0, None)).unwrap().shard_units,
            4
        );
    }

    #[test]
    fn the_lines_of_objects_are_positions_in_their_concatenation() {
        let s = shape(&objects(true), 10, plan(150, 5, Some(listing()))).unwrap();
        assert_eq!((s.units, s.shard_units), (150, 50));
        let starts: Vec<u64> = s
            .listing
            .unwrap()
            .iter()
            .map(|o| o["start"].as_u64().unwrap())
            .collect();
        assert_eq!(starts, [0, 100, 100]);
    }

    #[test]
    fn objects_as_items_are_positions_in_the_listing_with_their_url() {
        let s = shape(&objects(false), 2, plan(150, 1, Some(listing()))).unwrap();
        assert_eq!((s.units, s.shard_units), (3, 2));
        let listing = s.listing.unwrap();
        assert_eq!(
            listing[2],
            json!({"key": "p/c", "size": 50, "etag": "e-p/c", "url": "s3://b/p/c"})
        );
    }

    #[test]
    fn a_plan_that_does_not_fit_its_source_is_refused() {
        assert!(shape(&lines(), 1, plan(1, 1, Some(listing()))).is_err());
        assert!(shape(&objects(true), 1, plan(1, 1, None)).is_err());
        let many = (0..=MAX_LISTED_OBJECTS)
            .map(|i| ObjectEntry {
                key: i.to_string(),
                size: 1,
                etag: String::new(),
            })
            .collect();
        let e = shape(&objects(true), 1, plan(1, 1, Some(many))).unwrap_err();
        assert!(e.contains("20000"), "{e}");
    }
}
