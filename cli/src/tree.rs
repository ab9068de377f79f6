//! `kontinuum tree NAME`: an object's future tree from a server, drawn as
//! an indented tree with each node's state and progress.

use crate::output::{self, Format};
use crate::remote::{NamespaceArg, RemoteError, ServerArgs, block_on, object_id, print_out};
use kontinuum_api::ObjectId;
use kontinuum_engine::{TreeNode, TreeView};
use std::process::ExitCode;

/// Characters of a node's progress bar.
const BAR: usize = 10;

#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    /// The object: future/NAME or task/NAME, or NS/KIND/NAME (a bare NAME
    /// is a future).
    pub name: String,
    #[command(flatten)]
    pub namespace: NamespaceArg,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Show at most this many nodes (breadth first).
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_nodes: u32,
    /// Output format (json and yaml as kubectl prints them).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn tree(args: TreeArgs) -> Result<ExitCode, RemoteError> {
    let id = if args.name.contains('/') {
        object_id(&args.name, &args.namespace)?
    } else {
        ObjectId::future(args.namespace.or_default(), args.name.as_str())
    };
    let name = id.short();
    let client = args.server.client()?;
    let view = block_on(client.tree(&id, args.max_nodes as usize))??;
    let text = match args.output {
        Format::Text => draw(&name, &view),
        other => output::render(&[serde_json::to_value(&view).unwrap_or_default()], other),
    };
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}

/// One line per node: the tree on the left, state and progress aligned on
/// the right.
fn draw(name: &str, view: &TreeView) -> String {
    let mut rows = Vec::new();
    rows.push((label(name, &view.root), details(&view.root)));
    walk(&view.root, "", view.truncated, &mut rows);
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (left, right) in rows {
        let pad = width - left.chars().count() + 2;
        out.push_str(&left);
        if !right.is_empty() {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&right);
        }
        out.push('\n');
    }
    if view.truncated {
        let shown = count(&view.root);
        out.push_str(&format!(
            "… {} more node(s) not shown (of {}; --max-nodes N shows more)\n",
            view.nodes.saturating_sub(shown),
            view.nodes
        ));
    }
    out
}

/// `cut`: the view left nodes out, so children whose weights do not add up
/// to their parent's get a `…` line (some of their siblings are missing).
fn walk(node: &TreeNode, prefix: &str, cut: bool, rows: &mut Vec<(String, String)>) {
    let shown: u64 = node.children.iter().map(|c| c.weight).sum();
    let missing = cut && !node.children.is_empty() && shown < node.weight;
    let last = node.children.len().saturating_sub(1);
    for (i, child) in node.children.iter().enumerate() {
        let (branch, below) = if i == last && !missing {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let step = child.path.rsplit('/').next().unwrap_or("");
        rows.push((
            format!("{prefix}{branch}{}", label(step, child)),
            details(child),
        ));
        walk(child, &format!("{prefix}{below}"), cut, rows);
    }
    if missing {
        rows.push((format!("{prefix}└─ …"), String::new()));
    }
}

fn label(name: &str, node: &TreeNode) -> String {
    match node.function.as_ref().or(node.object.as_ref()) {
        Some(f) => format!("{name} {} {f}", node.kind),
        None => format!("{name} {}", node.kind),
    }
}

fn details(node: &TreeNode) -> String {
    let weight = node.weight.max(1);
    let done = node.done.min(weight);
    let filled = (done as u128 * BAR as u128 / weight as u128) as usize;
    let percent = done as u128 * 100 / weight as u128;
    let mut text = format!(
        "{:<10} [{}{}] {percent:>3}% {}/{}",
        node.state,
        "#".repeat(filled),
        "-".repeat(BAR - filled),
        node.done,
        node.weight
    );
    if node.attempts > 1 {
        text.push_str(&format!("  attempts {}", node.attempts));
    }
    if let Some(error) = &node.error {
        let one_line: String = error
            .chars()
            .take(120)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        text.push_str(&format!("  error: {one_line}"));
    }
    text
}

fn count(node: &TreeNode) -> u64 {
    1 + node.children.iter().map(count).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, state: &str, done: u64, weight: u64, children: Vec<TreeNode>) -> TreeNode {
        TreeNode {
            path: path.into(),
            kind: if children.is_empty() { "leaf" } else { "split" }.into(),
            function: None,
            object: None,
            state: state.into(),
            weight,
            done,
            attempts: 1,
            error: None,
            children,
        }
    }

    #[test]
    fn draws_an_indented_tree_with_progress() {
        let root = node(
            "/",
            "children",
            15,
            40,
            vec![
                node("/0", "succeeded", 10, 10, vec![]),
                node(
                    "/1",
                    "children",
                    5,
                    20,
                    vec![node("/1/0", "running", 5, 20, vec![])],
                ),
            ],
        );
        let view = TreeView {
            root,
            nodes: 6,
            truncated: true,
        };
        let text = draw("future/sq", &view);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "future/sq split  children   [###-------]  37% 15/40"
        );
        assert_eq!(
            lines[1],
            "├─ 0 leaf        succeeded  [##########] 100% 10/10"
        );
        assert_eq!(
            lines[2],
            "├─ 1 split       children   [##--------]  25% 5/20"
        );
        assert_eq!(
            lines[3],
            "│  └─ 0 leaf     running    [##--------]  25% 5/20"
        );
        assert_eq!(lines[4], "└─ …");
        assert_eq!(
            lines[5],
            "… 2 more node(s) not shown (of 6; --max-nodes N shows more)"
        );
    }
}
