//! Which functions a worker serves of those it has: a pool's allow and deny
//! lists (WorkerPool `spec.worker.functions`, `--allow`/`--deny`). A function a
//! pool does not allow is not served: not in the roster, and a call of it
//! fails for good saying which list refused it.

/// Patterns are function names where `*` stands for any run of characters
/// (`std.*`, `*`); a name matching a deny pattern is refused, and with an
/// allow list, a name matching none of it too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionPolicy {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl FunctionPolicy {
    /// From comma-separated lists (the flags' and variables' form).
    pub fn from_lists(allow: &str, deny: &str) -> FunctionPolicy {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        FunctionPolicy {
            allow: split(allow),
            deny: split(deny),
        }
    }

    /// Why `name` is refused, if it is.
    pub fn refusal(&self, name: &str) -> Option<String> {
        if let Some(p) = self.deny.iter().find(|p| matches(p, name)) {
            return Some(format!(
                "function '{name}' is denied in this pool (deny '{p}' in the WorkerPool's spec.worker.functions, or --deny)"
            ));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| matches(p, name)) {
            return Some(format!(
                "function '{name}' is not allowed in this pool (spec.worker.functions.allow of its WorkerPool, or --allow, lists {})",
                self.allow.join(", ")
            ));
        }
        None
    }
}

/// `name` against a pattern with `*` wildcards.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_any_run() {
        for (p, n, m) in [
            ("std.exec", "std.exec", true),
            ("std.exec", "std.execx", false),
            ("std.*", "std.exec", true),
            ("std.*", "py.square", false),
            ("*", "anything", true),
            ("*.square", "py.square", true),
            ("py.*square", "py.slow_square", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
        ] {
            assert_eq!(matches(p, n), m, "{p} {n}");
        }
    }

    #[test]
    fn deny_wins_and_an_allow_list_closes_the_rest() {
        let p = FunctionPolicy::from_lists("std.*, py.*", "std.exec");
        assert!(p.refusal("std.exec").unwrap().contains("deny 'std.exec'"));
        assert_eq!(p.refusal("std.sum"), None);
        assert_eq!(p.refusal("py.fail"), None);
        assert!(
            p.refusal("seed.do_sum")
                .unwrap()
                .contains("lists std.*, py.*")
        );
        assert_eq!(FunctionPolicy::default().refusal("std.exec"), None);
    }
}
