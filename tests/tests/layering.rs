//! No crate of the workspace has a circle among its modules: every module
//! can be read, tested and changed knowing only the ones it names. The
//! module lists of docs/architecture.md and of `api`'s and `server`'s
//! `lib.rs` are drawn from the same rule. No cluster needed.

use kontinuum_e2e::layering::{
    Circle, Graph, against_list, circles, crate_graphs, listed_in_table, listed_in_text_block,
    workspace_members,
};
use kontinuum_e2e::repo_root;
use std::collections::BTreeSet;

/// Circles known and owned elsewhere, by graph name and modules. An entry
/// that no longer matches a circle fails the test, so it cannot outlive the
/// fix.
const KNOWN: &[(&str, &[&str])] = &[];

#[test]
fn no_crate_has_a_circle_among_its_modules() {
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = workspace_members(&manifest);
    assert!(
        members.len() > 5,
        "workspace members not found: {members:?}"
    );
    let mut found: Vec<(String, Circle)> = Vec::new();
    let mut graphs = 0;
    for member in &members {
        if !root.join(member).join("src").is_dir() {
            continue;
        }
        for graph in crate_graphs(&root, member).unwrap_or_else(|e| panic!("{e}")) {
            graphs += 1;
            found.extend(circles(&graph).into_iter().map(|c| (graph.name.clone(), c)));
        }
    }
    assert!(graphs >= members.len(), "only {graphs} crate roots read");

    let known = |name: &str, circle: &Circle| {
        KNOWN.iter().any(|(crate_name, modules)| {
            *crate_name == name
                && circle.modules == modules.iter().map(|m| (*m).to_owned()).collect()
        })
    };
    let new: Vec<String> = found
        .iter()
        .filter(|(name, circle)| !known(name, circle))
        .map(|(name, circle)| format!("{name}: {circle}"))
        .collect();
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|(crate_name, modules)| {
            let modules: BTreeSet<String> = modules.iter().map(|m| (*m).to_owned()).collect();
            !found
                .iter()
                .any(|(name, circle)| name == crate_name && circle.modules == modules)
        })
        .map(|(crate_name, modules)| format!("{crate_name}: {modules:?}"))
        .collect();
    assert!(
        new.is_empty(),
        "module circles (each step names where the dependency is written):\n  {}",
        new.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "these allowed circles are gone: remove them from KNOWN in {}:\n  {}",
        file!(),
        stale.join("\n  ")
    );
}

fn library(member: &str) -> Graph {
    let graphs = crate_graphs(&repo_root(), member).unwrap_or_else(|e| panic!("{e}"));
    graphs
        .into_iter()
        .find(|g| g.name == member)
        .unwrap_or_else(|| panic!("{member} has no library"))
}

fn read(path: &str) -> String {
    let path = repo_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lists that claim an order (each module uses only those after it)
/// say what the source does.
#[test]
fn the_layered_module_lists_are_true() {
    let architecture = read("docs/architecture.md");
    let lists = [
        (
            "api",
            "docs/architecture.md, api/src/",
            listed_in_table(&architecture, "### `api/src/`"),
        ),
        (
            "api",
            "api/src/lib.rs",
            listed_in_text_block(&read("api/src/lib.rs")),
        ),
        (
            "server",
            "docs/architecture.md, server/src/",
            listed_in_table(&architecture, "### `server/src/`"),
        ),
        (
            "server",
            "server/src/lib.rs",
            listed_in_text_block(&read("server/src/lib.rs")),
        ),
    ];
    let mut wrong = Vec::new();
    for (member, document, listed) in &lists {
        assert!(listed.len() > 5, "{document}: no module list found");
        wrong.extend(
            against_list(&library(member), listed)
                .into_iter()
                .map(|e| format!("{document}: {e}")),
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
