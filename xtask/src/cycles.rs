//! Module cycles in the core: which of `skmem`'s top-level modules name
//! each other (`crate::x` in the code, comments left out). The core's data
//! should flow one way; the pairs still known to go both ways are listed,
//! and a new one fails the check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Pairs that still name each other, each with why (issue 20's remaining
/// work): the check fails on any other, and on one of these once fixed
/// (so the list shrinks).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "arena",
        "publish",
        "the registry starts the statistics socket at the first arena",
    ),
    (
        "arena",
        "workers",
        "the nexus arena sizes its worker rings and advisories",
    ),
    (
        "error",
        "region",
        "one error type for every layer (per-layer errors to come)",
    ),
    (
        "lend",
        "workers",
        "the offer serves worker slots; workers are lent arenas",
    ),
];

/// `crate::x` names in `text`, comments left out.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The pairs of top-level modules of the crate at `src` that name each
/// other.
pub fn pairs(src: &Path) -> Result<BTreeSet<(String, String)>> {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src)?;
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("")
                .trim_end_matches(".rs")
                .to_owned();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            let names = named_modules(&text);
            uses.entry(top.clone())
                .or_default()
                .extend(names.into_iter().filter(|n| *n != top));
        }
    }
    let mut pairs = BTreeSet::new();
    for (a, used) in &uses {
        for b in used {
            if a < b && uses.get(b).is_some_and(|u| u.contains(a)) {
                pairs.insert((a.clone(), b.clone()));
            }
        }
    }
    Ok(pairs)
}

/// Fails on a cycle not in [`KNOWN`], or a known one that is gone.
pub fn check(root: &Path) -> Result<()> {
    let found = pairs(&root.join("pool").join("src"))?;
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b, _)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    if !new.is_empty() {
        bail!("skmem's modules name each other both ways: {new:?} (the core's data flows one way)");
    }
    let fixed: Vec<_> = known.difference(&found).collect();
    if !fixed.is_empty() {
        bail!("{fixed:?} no longer name each other: take them off xtask's KNOWN list");
    }
    println!(
        "ok: skmem's modules depend one way but for {} known pairs",
        known.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_code_count_and_names_in_comments_do_not() {
        let t = "use crate::arena::Arena; // crate::publish\n/// see [`crate::lend`]\nlet x = crate::util::lock(&m);";
        let n: Vec<String> = named_modules(t).into_iter().collect();
        assert_eq!(n, ["arena", "util"]);
    }
}
