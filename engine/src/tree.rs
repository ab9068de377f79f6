//! The shape of a tree for people: every node with its state and progress,
//! from the store, overlaid with the newer state kept in memory.

use crate::error::EngineError;
use crate::machine::State;
use crate::public::{TreeNode, TreeView};
use crate::records::{Body, Node, NodeState, Root};
use crate::store::Store;
use kontinuum_api::work::NodeId;
use std::collections::{BTreeMap, HashMap};

/// The node's kind, the function it calls, the object it links.
fn kind(body: &Body) -> (&'static str, Option<String>, Option<String>) {
    match body {
        Body::Call { call } => ("call", Some(call.function.clone()), None),
        Body::Split { .. } => ("split", None, None),
        Body::Leaf { .. } => ("leaf", None, None),
        Body::Plan { .. } => ("plan", None, None),
        Body::Parallel { .. } => ("parallel", None, None),
        Body::Sequence { .. } => ("sequence", None, None),
        Body::Linked { object, .. } => ("link", None, Some(object.to_string())),
    }
}

/// Reads every node of the tree (this walks the whole tree on disk: a
/// diagnostic, not a hot path) and keeps the first `max_nodes` in
/// breadth-first order.
pub fn view(
    st: &State,
    store: &Store,
    root: &Root,
    root_node: Option<Node>,
    max_nodes: usize,
) -> Result<TreeView, EngineError> {
    let mut nodes: HashMap<NodeId, Node> = HashMap::new();
    for n in root_node.into_iter().chain(store.tree_nodes(root.id)?) {
        nodes.insert(n.id, n);
    }
    // Memory is newer than the store for unfinished nodes.
    for n in st.nodes.values().filter(|n| n.root == root.id) {
        nodes.insert(n.id, Node::clone(n));
    }
    let mut children: HashMap<NodeId, BTreeMap<u32, NodeId>> = HashMap::new();
    for n in nodes.values() {
        if let Some(p) = n.parent {
            children.entry(p).or_default().insert(n.index, n.id);
        }
    }
    let progress: HashMap<NodeId, u64> = st
        .leases
        .values()
        .filter(|l| l.root == root.id)
        .map(|l| (l.node, l.progress))
        .collect();
    // Which nodes to show: the first `max_nodes` in breadth-first order.
    let mut shown: std::collections::HashSet<NodeId> = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::from([root.id]);
    while let Some(id) = queue.pop_front() {
        if shown.len() >= max_nodes.max(1) {
            break;
        }
        shown.insert(id);
        queue.extend(
            children
                .get(&id)
                .into_iter()
                .flat_map(|c| c.values().copied()),
        );
    }
    let truncated = shown.len() < nodes.len();
    let Some(top) = nodes.get(&root.id) else {
        return Err(EngineError::Corrupt {
            what: "tree".into(),
            detail: format!("root {} has no node", root.id),
        });
    };
    let root_view = build(top, "/".into(), &nodes, &children, &progress, &shown);
    Ok(TreeView {
        root: root_view,
        nodes: nodes.len() as u64,
        truncated,
    })
}

fn build(
    node: &Node,
    path: String,
    nodes: &HashMap<NodeId, Node>,
    children: &HashMap<NodeId, BTreeMap<u32, NodeId>>,
    progress: &HashMap<NodeId, u64>,
    shown: &std::collections::HashSet<NodeId>,
) -> TreeNode {
    let (kind, function, object) = kind(&node.body);
    let mut view = TreeNode {
        path: path.clone(),
        kind: kind.into(),
        function,
        object,
        state: node.state.name().into(),
        weight: node.weight,
        done: 0,
        attempts: node.attempts,
        error: node.error.as_ref().map(|e| e.message.clone()),
        children: Vec::new(),
    };
    let mut below = 0;
    for (index, id) in children.get(&node.id).into_iter().flatten() {
        let Some(child) = nodes.get(id) else { continue };
        if !shown.contains(id) {
            below += done_of(child, nodes, children, progress);
            continue;
        }
        let sep = if path.ends_with('/') { "" } else { "/" };
        let c = build(
            child,
            format!("{path}{sep}{index}"),
            nodes,
            children,
            progress,
            shown,
        );
        below += c.done;
        view.children.push(c);
    }
    view.done = own_done(node, progress) + below;
    view
}

/// Units this node did itself.
fn own_done(node: &Node, progress: &HashMap<NodeId, u64>) -> u64 {
    let own_units = match node.body {
        Body::Leaf { start, end } => end - start,
        Body::Call { .. } | Body::Linked { .. } => node.weight,
        _ => 0,
    };
    match node.state {
        NodeState::Succeeded | NodeState::Failed => own_units,
        // A gathering node's own body is done; a running one reports progress.
        NodeState::Children | NodeState::Folding => own_units,
        NodeState::Running => progress.get(&node.id).copied().unwrap_or(0).min(own_units),
        _ => 0,
    }
}

fn done_of(
    node: &Node,
    nodes: &HashMap<NodeId, Node>,
    children: &HashMap<NodeId, BTreeMap<u32, NodeId>>,
    progress: &HashMap<NodeId, u64>,
) -> u64 {
    let below: u64 = children
        .get(&node.id)
        .into_iter()
        .flatten()
        .filter_map(|(_, id)| nodes.get(id))
        .map(|c| done_of(c, nodes, children, progress))
        .sum();
    own_done(node, progress) + below
}
