//! The module graph of a crate, read from its source, and the circles in it.
//!
//! A module is a file (a directory's module is its `mod.rs`); an inline
//! `mod x { .. }` belongs to the file it is written in. A module depends on
//! another when it names it through a `crate::`, `super::` or `self::` path,
//! in a `use` or anywhere else. Comments, string literals and items under
//! `#[cfg(test)]` are not read: a test may reach anywhere without making the
//! product's layers a lie. Paths that start at a child module's bare name are
//! not edges either; the layering rule is about the explicit paths above.
//!
//! This is a reader of Rust, not a compiler: it knows tokens, attributes,
//! `mod` declarations and `use` trees, which is all the rule needs, and it
//! refuses (with an error naming the file) what it cannot follow, such as a
//! `#[path]` on a module the product builds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The modules of one crate root (a library, or one binary) and who uses whom.
#[derive(Debug, Default)]
pub struct Graph {
    /// `api`, or `operator (main.rs)` for a binary root beside a library.
    pub name: String,
    /// Module paths without `crate::`; the root is `""`.
    pub modules: BTreeSet<String>,
    /// `(from, to)` to the first place the dependency is written (`file:line`).
    pub edges: BTreeMap<(String, String), String>,
}

/// One circle: every module of a strongly connected set, and one walk
/// around it with the place each step is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circle {
    pub modules: BTreeSet<String>,
    pub walk: Vec<(String, String)>,
}

impl std::fmt::Display for Circle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.modules.iter().map(|m| display(m)).collect();
        write!(f, "{{{}}}:", names.join(", "))?;
        for (module, place) in &self.walk {
            write!(f, " {} ({place}) →", display(module))?;
        }
        match self.walk.first() {
            Some((first, _)) => write!(f, " {}", display(first)),
            None => Ok(()),
        }
    }
}

fn display(module: &str) -> &str {
    if module.is_empty() { "crate" } else { module }
}

/// Reads every `.rs` file under `crate_dir/src` and builds one graph per
/// crate root found there: `lib.rs`, `main.rs`, `bin/*.rs`.
pub fn crate_graphs(repo: &Path, crate_dir: &str) -> Result<Vec<Graph>, String> {
    let src = repo.join(crate_dir).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files)?;
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| files.contains_key(p))
        .collect();
    roots.extend(
        files
            .keys()
            .filter(|p| p.parent() == Some(Path::new("bin")))
            .cloned(),
    );
    let has_lib = files.contains_key(Path::new("lib.rs"));
    roots
        .iter()
        .map(|root| {
            let name = if root == Path::new("lib.rs") || !has_lib && root == Path::new("main.rs") {
                crate_dir.to_owned()
            } else {
                format!("{crate_dir} ({})", root.display())
            };
            graph(&name, &Path::new(crate_dir).join("src"), root, &files)
        })
        .collect()
}

fn read_tree(src: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            read_tree(src, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let relative = path
                .strip_prefix(src)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            out.insert(relative.to_path_buf(), text);
        }
    }
    Ok(())
}

/// The graph of the crate rooted at `root`, from `files` (paths relative to
/// the `src` directory; `shown` prefixes them in the places reported).
pub fn graph(
    name: &str,
    shown: &Path,
    root: &Path,
    files: &BTreeMap<PathBuf, String>,
) -> Result<Graph, String> {
    // Which file is which module, following `mod` declarations from the root.
    let mut scanned: Vec<(Vec<String>, PathBuf, Scan)> = Vec::new();
    let root_dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
    let children_of_root = if root.parent() == Some(Path::new("bin")) {
        root.with_extension("")
    } else {
        root_dir
    };
    let mut queue = VecDeque::from([(Vec::new(), root.to_path_buf(), children_of_root)]);
    while let Some((module, file, children_dir)) = queue.pop_front() {
        let text = files
            .get(&file)
            .ok_or_else(|| format!("{}: declared but not found", shown.join(&file).display()))?;
        let scan = scan(text).map_err(|e| format!("{}: {e}", shown.join(&file).display()))?;
        for child in &scan.mods {
            let flat = children_dir.join(format!("{child}.rs"));
            let nested = children_dir.join(child).join("mod.rs");
            let (path, dir) = if files.contains_key(&flat) {
                (flat, children_dir.join(child))
            } else if files.contains_key(&nested) {
                (nested, children_dir.join(child))
            } else {
                return Err(format!(
                    "{}: `mod {child};` has no file",
                    shown.join(&file).display()
                ));
            };
            let mut path_of_child = module.clone();
            path_of_child.push(child.clone());
            queue.push_back((path_of_child, path, dir));
        }
        scanned.push((module, file, scan));
    }
    let modules: BTreeSet<String> = scanned.iter().map(|(m, _, _)| m.join("::")).collect();
    let mut edges = BTreeMap::new();
    for (module, file, scan) in &scanned {
        let from = module.join("::");
        for reference in &scan.paths {
            let Some(full) = resolve(module, reference) else {
                continue;
            };
            let Some(to) = (0..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| modules.contains(m))
            else {
                continue;
            };
            if to != from {
                let place = format!("{}:{}", shown.join(file).display(), reference.line);
                edges.entry((from.clone(), to)).or_insert(place);
            }
        }
    }
    Ok(Graph {
        name: name.to_owned(),
        modules,
        edges,
    })
}

/// The absolute module path a reference names, or `None` for a `super`
/// above the crate root.
fn resolve(module: &[String], reference: &Reference) -> Option<Vec<String>> {
    let mut here: Vec<String> = module.iter().chain(&reference.inline).cloned().collect();
    let mut segments = reference.segments.iter();
    match segments.next().map(String::as_str) {
        Some("crate") => here.clear(),
        Some("super") => {
            here.pop()?;
        }
        _ => {}
    }
    for segment in segments {
        match segment.as_str() {
            "super" => {
                here.pop()?;
            }
            "self" => {}
            _ => here.push(segment.clone()),
        }
    }
    Some(here)
}

/// What one file says that matters here.
#[derive(Debug, Default)]
struct Scan {
    /// `mod x;` declarations outside `#[cfg(test)]`.
    mods: Vec<String>,
    paths: Vec<Reference>,
}

/// A `crate::`/`super::`/`self::` path as written, with the inline modules
/// it is written in (a `super` there climbs out of them first).
#[derive(Debug)]
struct Reference {
    inline: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// `::`
    PathSep,
    /// A string literal's text (escapes left as written): an attribute's
    /// string may name a path (`schema_with = "crate::schema::f"`).
    Str(String),
    /// Another literal or a lifetime: nothing to follow inside.
    Opaque,
}

fn scan(text: &str) -> Result<Scan, String> {
    let toks = lex(text)?;
    let mut out = Scan::default();
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut test_item = false;
    let mut path_attr = false;
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('#') => {
                let open = if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('!')) {
                    i + 2
                } else {
                    i + 1
                };
                if toks.get(open).map(|t| &t.0) == Some(&Tok::Punct('[')) {
                    let close = matching(&toks, open)?;
                    let inside: Vec<&Tok> = toks[open + 1..close].iter().map(|t| &t.0).collect();
                    let cfg_test = [
                        Tok::Ident("cfg".into()),
                        Tok::Punct('('),
                        Tok::Ident("test".into()),
                        Tok::Punct(')'),
                    ];
                    if inside.iter().copied().eq(cfg_test.iter()) {
                        test_item = true;
                    }
                    if inside.first() == Some(&&Tok::Ident("path".into())) {
                        path_attr = true;
                    } else if !test_item {
                        for (tok, line) in &toks[open + 1..close] {
                            if let Tok::Str(text) = tok {
                                attribute_paths(text, *line, &inline, &mut out.paths);
                            }
                        }
                    }
                    i = close + 1;
                    continue;
                }
                i += 1;
            }
            _ if test_item => {
                i = skip_item(&toks, i)?;
                test_item = false;
                path_attr = false;
            }
            Tok::Ident(word) if word == "mod" => {
                let Some((Tok::Ident(name), _)) = toks.get(i + 1) else {
                    return Err(format!("line {line}: `mod` without a name"));
                };
                match toks.get(i + 2).map(|t| &t.0) {
                    Some(Tok::Punct(';')) => {
                        if path_attr {
                            return Err(format!(
                                "line {line}: `#[path]` on `mod {name}` is not followed"
                            ));
                        }
                        out.mods.push(name.clone());
                        i += 3;
                    }
                    Some(Tok::Punct('{')) => {
                        inline.push((name.clone(), depth));
                        depth += 1;
                        i += 3;
                    }
                    _ => return Err(format!("line {line}: `mod {name}` not understood")),
                }
                path_attr = false;
            }
            Tok::Punct('{') => {
                depth += 1;
                path_attr = false;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("line {line}: unbalanced `}}`"))?;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                path_attr = false;
                i += 1;
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                    && !macro_crate(&toks, i)
                    && !visibility(&toks, i) =>
            {
                let (trees, next) = use_tree(&toks, i)?;
                for segments in trees {
                    out.paths.push(Reference {
                        inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                        segments,
                        line: *line,
                    });
                }
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// The paths an attribute's string names, such as serde's `with` and
/// schemars' `schema_with`: the derive expands them into calls.
fn attribute_paths(text: &str, line: usize, inline: &[(String, usize)], out: &mut Vec<Reference>) {
    let Ok(toks) = lex(text) else {
        return;
    };
    for (i, (tok, _)) in toks.iter().enumerate() {
        if let Tok::Ident(word) = tok
            && matches!(word.as_str(), "crate" | "super" | "self")
            && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
            && let Ok((trees, _)) = use_tree(&toks, i)
        {
            out.extend(trees.into_iter().map(|segments| Reference {
                inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                segments,
                line,
            }));
        }
    }
}

/// `$crate::` in a macro: the crate of the macro's definition, not a module.
fn macro_crate(toks: &[(Tok, usize)], i: usize) -> bool {
    i > 0 && toks[i - 1].0 == Tok::Punct('$')
}

/// `pub(in crate::x)`: who may see an item, not a dependency.
fn visibility(toks: &[(Tok, usize)], i: usize) -> bool {
    i >= 2 && toks[i - 1].0 == Tok::Ident("in".into()) && toks[i - 2].0 == Tok::Punct('(')
}

/// The index of the bracket closing the one at `open`.
fn matching(toks: &[(Tok, usize)], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (j, (tok, _)) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err(format!("line {}: unclosed bracket", toks[open].1))
}

/// Past the item starting at `i`: up to a `;` or `,` of its own level, or
/// past its first `{ .. }` body, or up to the bracket that closes around it.
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> Result<usize, String> {
    while let Some((tok, _)) = toks.get(i) {
        match tok {
            Tok::Punct(';' | ',') => return Ok(i + 1),
            Tok::Punct(')' | ']' | '}') => return Ok(i),
            Tok::Punct('{') => return Ok(matching(toks, i)? + 1),
            Tok::Punct('(' | '[') => i = matching(toks, i)? + 1,
            _ => i += 1,
        }
    }
    Ok(i)
}

/// Every full path of the path or `use` tree starting at `i`
/// (`crate::a::{b, c::{self, d}}` is three), and the index after it.
fn use_tree(toks: &[(Tok, usize)], mut i: usize) -> Result<(Vec<Vec<String>>, usize), String> {
    let mut segments = Vec::new();
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                segments.push(s.clone());
                i += 1;
            }
            Some(Tok::Punct('*')) => {
                i += 1;
                break;
            }
            Some(Tok::Punct('{')) => {
                let close = matching(toks, i)?;
                let mut out = Vec::new();
                i += 1;
                while i < close {
                    let (subtrees, next) = use_tree(toks, i)?;
                    out.extend(subtrees.into_iter().map(|sub| {
                        let mut full = segments.clone();
                        full.extend(sub);
                        full
                    }));
                    // Past `as name` to the next `,` of this group.
                    i = next;
                    while i < close && toks[i].0 != Tok::Punct(',') {
                        i += 1;
                    }
                    i += 1;
                }
                return Ok((out, close + 1));
            }
            _ => break,
        }
        if toks.get(i).map(|t| &t.0) == Some(&Tok::PathSep) {
            i += 1;
        } else {
            break;
        }
    }
    Ok((vec![segments], i))
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    return Err(format!("line {start_line}: unclosed comment"));
                }
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            let end = string_end(&chars, i + 1, &mut line)
                .ok_or_else(|| format!("line {start_line}: unclosed string"))?;
            toks.push((Tok::Str(chars[i + 1..end - 1].iter().collect()), start_line));
            i = end;
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // An escaped character literal: past the escaped character,
                // which may itself be a quote, to the closing one.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
            toks.push((Tok::Opaque, start_line));
        } else if c.is_alphabetic() || c == '_' {
            let begin = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[begin..i].iter().collect();
            let prefix = matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr");
            if prefix && word.ends_with('r') && (at(i) == '"' || at(i) == '#') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    let begin = i + hashes + 1;
                    i = raw_string_end(&chars, begin, hashes, &mut line)
                        .ok_or_else(|| format!("line {start_line}: unclosed raw string"))?;
                    let text = chars[begin..i - 1 - hashes].iter().collect();
                    toks.push((Tok::Str(text), start_line));
                    continue;
                }
                if word == "r" && hashes == 1 {
                    // A raw identifier: `r#type` is the name `type`.
                    let begin = i + 1;
                    i = begin;
                    while at(i).is_alphanumeric() || at(i) == '_' {
                        i += 1;
                    }
                    toks.push((Tok::Ident(chars[begin..i].iter().collect()), start_line));
                    continue;
                }
            }
            if prefix && at(i) == '"' {
                let end = string_end(&chars, i + 1, &mut line)
                    .ok_or_else(|| format!("line {start_line}: unclosed string"))?;
                toks.push((Tok::Str(chars[i + 1..end - 1].iter().collect()), start_line));
                i = end;
            } else if word == "b" && at(i) == '\'' {
                i += if at(i + 1) == '\\' { 4 } else { 3 };
                while at(i - 1) != '\'' && i < chars.len() {
                    i += 1;
                }
                toks.push((Tok::Opaque, start_line));
            } else {
                toks.push((Tok::Ident(word), start_line));
            }
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            toks.push((Tok::Opaque, start_line));
        } else if c == ':' && at(i + 1) == ':' {
            toks.push((Tok::PathSep, start_line));
            i += 2;
        } else {
            toks.push((Tok::Punct(c), start_line));
            i += 1;
        }
    }
    Ok(toks)
}

/// The index after the `"` closing a string whose text starts at `i`.
fn string_end(chars: &[char], mut i: usize, line: &mut usize) -> Option<usize> {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return Some(i + 1),
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    None
}

/// The index after the `"` and `hashes` `#` closing a raw string.
fn raw_string_end(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> Option<usize> {
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        *line += usize::from(chars[i] == '\n');
        i += 1;
    }
    None
}

/// Every circle of the graph: its strongly connected sets of more than one
/// module, each with the shortest walk around it from its first module.
pub fn circles(graph: &Graph) -> Vec<Circle> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.edges.keys() {
        next.entry(from).or_default().push(to);
    }
    strongly_connected(&graph.modules, &next)
        .into_iter()
        .filter(|set| set.len() > 1)
        .map(|set| {
            let first = set.iter().next().map(String::as_str).unwrap_or_default();
            let walk = shortest_cycle(first, &set, &next)
                .into_iter()
                .map(|(from, to)| {
                    let place = graph
                        .edges
                        .get(&(from.to_owned(), to.to_owned()))
                        .cloned()
                        .unwrap_or_default();
                    (from.to_owned(), place)
                })
                .collect();
            Circle { modules: set, walk }
        })
        .collect()
}

/// Tarjan's algorithm, iteratively (a deep crate must not overflow a stack).
fn strongly_connected(
    nodes: &BTreeSet<String>,
    next: &BTreeMap<&str, Vec<&str>>,
) -> Vec<BTreeSet<String>> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut low: BTreeMap<&str, usize> = BTreeMap::new();
    let mut on_stack: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut sets = Vec::new();
    let none: Vec<&str> = Vec::new();
    for start in nodes {
        if index.contains_key(start.as_str()) {
            continue;
        }
        let mut work: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        while let Some((node, child)) = work.pop() {
            if child == 0 {
                let n = index.len();
                index.insert(node, n);
                low.insert(node, n);
                stack.push(node);
                on_stack.insert(node);
            }
            let successors = next.get(node).unwrap_or(&none);
            if let Some(&succ) = successors.get(child) {
                work.push((node, child + 1));
                if !index.contains_key(succ) {
                    work.push((succ, 0));
                } else if on_stack.contains(succ) {
                    let l = low[node].min(index[succ]);
                    low.insert(node, l);
                }
                continue;
            }
            if low[node] == index[node] {
                let mut set = BTreeSet::new();
                while let Some(top) = stack.pop() {
                    on_stack.remove(top);
                    set.insert(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                sets.push(set);
            }
            if let Some(&(parent, _)) = work.last() {
                let l = low[parent].min(low[node]);
                low.insert(parent, l);
            }
        }
    }
    sets
}

/// The steps of a shortest walk from `first` back to it inside `set`.
fn shortest_cycle<'a>(
    first: &'a str,
    set: &BTreeSet<String>,
    next: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<(&'a str, &'a str)> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([first]);
    while let Some(node) = queue.pop_front() {
        for &succ in next.get(node).into_iter().flatten() {
            if !set.contains(succ) {
                continue;
            }
            if succ == first {
                let mut steps = vec![(node, first)];
                let mut at = node;
                while at != first {
                    let Some(&prev) = came_from.get(at) else {
                        break;
                    };
                    steps.push((prev, at));
                    at = prev;
                }
                steps.reverse();
                return steps;
            }
            if !came_from.contains_key(succ) {
                came_from.insert(succ, node);
                queue.push_back(succ);
            }
        }
    }
    Vec::new()
}

/// The modules the table under `heading` lists, in reading order: its rows
/// top to bottom, the backticked names of each row's first cell left to
/// right (`validate/` and `task.rs` name the modules `validate` and `task`).
pub fn listed_in_table(markdown: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in markdown.lines() {
        if line.starts_with('#') {
            inside = line.trim() == heading;
            continue;
        }
        let Some(cell) = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.split('|').next())
        else {
            continue;
        };
        if inside {
            out.extend(cell.split('`').skip(1).step_by(2).map(module_name));
        }
    }
    out
}

/// The modules the first ```` ```text ```` block of a crate's `//!` docs
/// lists, in reading order: on each line that does not start with a space,
/// the names before the description (set off by two spaces or more).
pub fn listed_in_text_block(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in source.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if doc.starts_with("```") {
            if inside {
                break;
            }
            inside = doc == "```text";
            continue;
        }
        if !inside || doc.starts_with(' ') || doc.is_empty() {
            continue;
        }
        let names = doc.split("  ").next().unwrap_or_default();
        out.extend(names.split_whitespace().map(module_name));
    }
    out
}

fn module_name(listed: &str) -> String {
    let name = listed.trim_end_matches('/');
    name.strip_suffix(".rs").unwrap_or(name).replace('/', "::")
}

/// Where `graph` disagrees with a list that claims each module uses only
/// those listed after it: a module not listed, and a use of a module listed
/// before the user (or at the same place: the same entry is one module for
/// this purpose, `validate` for `validate::kind`). Uses of the crate root
/// (its constants and re-exports) do not count.
pub fn against_list(graph: &Graph, listed: &[String]) -> Vec<String> {
    let position = |module: &str| -> Option<usize> {
        let segments: Vec<&str> = module.split("::").collect();
        (1..=segments.len())
            .rev()
            .find_map(|n| listed.iter().position(|l| *l == segments[..n].join("::")))
    };
    let mut out = Vec::new();
    for module in &graph.modules {
        if !module.is_empty() && position(module).is_none() {
            out.push(format!("`{module}` is not listed"));
        }
    }
    for ((from, to), place) in &graph.edges {
        if to.is_empty() {
            continue;
        }
        if let (Some(user), Some(used)) = (position(from), position(to))
            && used < user
        {
            out.push(format!(
                "`{from}` uses `{to}` ({place}), which is listed before it"
            ));
        }
    }
    for (i, name) in listed.iter().enumerate() {
        if !graph.modules.contains(name) {
            out.push(format!("`{name}` is listed but is no module"));
        } else if listed[..i].contains(name) {
            out.push(format!("`{name}` is listed twice"));
        }
    }
    out
}

/// The workspace's member directories, from the root `Cargo.toml`.
pub fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members") else {
        return Vec::new();
    };
    let rest = &manifest[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    rest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect()
    }

    fn edges(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        let g = graph("t", Path::new("src"), Path::new("lib.rs"), &files(list)).unwrap();
        g.edges.into_keys().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_circle_is_found_and_named_with_its_places() {
        let g = graph(
            "t",
            Path::new("src"),
            Path::new("lib.rs"),
            &files(&[
                ("lib.rs", "mod a;\nmod b;\nmod c;"),
                ("a.rs", "use crate::b::B;"),
                ("b.rs", "\n\nfn f() { crate::c::g() }"),
                ("c.rs", "use super::{a::{self, A}};"),
            ]),
        )
        .unwrap();
        let found = circles(&g);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "{a, b, c}: a (src/a.rs:1) → b (src/b.rs:3) → c (src/c.rs:1) → a"
        );
    }

    #[test]
    fn comments_strings_and_test_items_are_not_dependencies() {
        let found = edges(&[
            ("lib.rs", "mod a;\nmod b;"),
            (
                "a.rs",
                r##"
                // use crate::b;
                /* crate::b::X /* nested */ crate::b::Y */
                /// [`crate::b::Z`]
                const S: &str = "crate::b::W";
                const R: &str = r#"crate::b::V "quoted" "#;
                const C: char = '"'; const L: &'static str = "";
                #[cfg(test)]
                mod tests { use crate::b::T; }
                #[cfg(test)]
                use crate::b::U;
                #[cfg(test)]
                fn helper() { crate::b::f() }
                macro_rules! m { () => { $crate::b::g() } }
                pub(in crate::b) fn seen() {}
                "##,
            ),
            ("b.rs", "use crate::a::A;"),
        ]);
        assert_eq!(found, pairs(&[("b", "a")]));
    }

    #[test]
    fn a_path_in_an_attribute_string_is_a_dependency() {
        let found = edges(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;"),
            (
                "a.rs",
                "struct S {\n  #[schemars(schema_with = \"crate::b::f\")]\n  #[serde(default, with = r#\"super::c\"#)]\n  x: u8,\n}",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(found, pairs(&[("a", "b"), ("a", "c")]));
    }

    #[test]
    fn a_test_module_file_is_not_read() {
        let found = edges(&[
            ("lib.rs", "mod a;\nmod b;"),
            ("a.rs", "#[cfg(test)]\nmod tests;\npub fn f() {}"),
            ("a/tests.rs", "use crate::b::B;"),
            ("b.rs", "use crate::a::f;"),
        ]);
        assert_eq!(found, pairs(&[("b", "a")]));
    }

    #[test]
    fn super_and_nested_modules_resolve_to_the_file_that_holds_the_item() {
        let found = edges(&[
            ("lib.rs", "pub mod h;\nmod z;"),
            ("h/mod.rs", "mod p;\nmod f;\npub struct Shared;"),
            (
                "h/p.rs",
                "use super::f::Fun;\nuse super::Shared;\nmod inner { use super::super::super::z::Z; }",
            ),
            ("h/f.rs", "use super::super::z;\nuse self::super::p;"),
            (
                "z.rs",
                "pub fn z() { crate::h::p::x(); crate::Root::new(); }",
            ),
        ]);
        assert_eq!(
            found,
            pairs(&[
                ("h::p", "h::f"),
                ("h::p", "h"),
                ("h::p", "z"),
                ("h::f", "z"),
                ("h::f", "h::p"),
                ("z", "h::p"),
                ("z", ""),
            ])
        );
    }

    #[test]
    fn a_missing_module_file_and_a_path_attribute_are_refused() {
        let missing = graph(
            "t",
            Path::new("src"),
            Path::new("lib.rs"),
            &files(&[("lib.rs", "mod gone;")]),
        );
        assert!(missing.unwrap_err().contains("`mod gone;` has no file"));
        let moved = graph(
            "t",
            Path::new("src"),
            Path::new("lib.rs"),
            &files(&[("lib.rs", "#[path = \"x.rs\"]\nmod y;")]),
        );
        assert!(moved.unwrap_err().contains("#[path]"));
    }

    #[test]
    fn a_layered_graph_has_no_circle() {
        let g = graph(
            "t",
            Path::new("src"),
            Path::new("lib.rs"),
            &files(&[
                ("lib.rs", "mod a;\nmod b;\nmod c;"),
                ("a.rs", "use crate::{b::B, c::C};"),
                ("b.rs", "use crate::c::C;"),
                ("c.rs", ""),
            ]),
        )
        .unwrap();
        assert_eq!(circles(&g), Vec::new());
    }

    #[test]
    fn a_list_is_checked_against_the_graph() {
        let g = graph(
            "t",
            Path::new("src"),
            Path::new("lib.rs"),
            &files(&[
                ("lib.rs", "mod v;\nmod a;\nmod b;\nmod c;\nmod d;"),
                ("v/mod.rs", "mod k;\nuse crate::a::A;"),
                ("v/k.rs", "use super::super::b::B;\nuse crate::A;"),
                ("a.rs", "use crate::b::B;"),
                ("b.rs", "use crate::c::C;"),
                ("c.rs", "use crate::a::A;"),
                ("d.rs", ""),
            ]),
        )
        .unwrap();
        let markdown = "\
## Other\n| `c.rs` | x |\n\
### `t/src/`\n\n| module | holds |\n|---|---|\n\
| `v/` | checks |\n| `a.rs`, `b.rs` | types |\n| `c.rs` | leaf |\n| `e.rs` | gone |\n";
        let listed = listed_in_table(markdown, "### `t/src/`");
        assert_eq!(listed, ["v", "a", "b", "c", "e"]);
        assert_eq!(
            against_list(&g, &listed),
            [
                "`d` is not listed",
                "`c` uses `a` (src/c.rs:1), which is listed before it",
                "`e` is listed but is no module",
            ]
        );
        let ordered: Vec<String> = ["v", "a", "b", "c", "d"].map(String::from).into();
        let (c_to_a, rest): (Vec<String>, Vec<String>) = against_list(&g, &ordered)
            .into_iter()
            .partition(|e| e.starts_with("`c` uses `a`"));
        assert_eq!((c_to_a.len(), rest), (1, Vec::<String>::new()));
    }

    #[test]
    fn a_text_block_lists_the_names_before_each_description() {
        let source = "//! Layers:\n//!\n//! ```text\n//! server.rs   the router, and\n//!             more words\n//! task future  types\n//! routes/     handlers\n//! ```\n//!\n//! ```text\n//! not.rs  another block\n//! ```\npub mod task;\n";
        assert_eq!(
            listed_in_text_block(source),
            ["server", "task", "future", "routes"]
        );
    }

    #[test]
    fn members_are_read_from_the_workspace_manifest() {
        let manifest =
            "[workspace]\nresolver = \"3\"\nmembers = [\"api\", \"bench/handler\",\n  \"cli\"]\n";
        assert_eq!(workspace_members(manifest), ["api", "bench/handler", "cli"]);
    }
}
