//! Module cycles in the core: which of `skmem`'s top-level modules name
//! each other (`crate::x` in the code, comments left out). The core's data
//! should flow one way; the pairs still known to go both ways are listed,
//! and a new one fails the check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Pairs allowed to name each other, each with why. Empty: the core's
/// data flows one way, and a new pair fails the check.
const KNOWN: &[(&str, &str, &str)] = &[];

/// The crate root's re-exports (`pub use module::{A, B}`, `pub use
/// module::x as y`): a `crate::A` elsewhere names `module`.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut text = String::new();
    for line in lib.lines() {
        let code = line.split("//").next().unwrap_or("").trim();
        if code.starts_with("pub use ") || !text.is_empty() {
            text.push_str(code);
            text.push(' ');
            if code.ends_with(';') {
                let body = text
                    .trim_start_matches("pub use ")
                    .trim_end_matches([';', ' ']);
                if let Some((module, names)) = body.split_once("::") {
                    let names = names.trim_matches(['{', '}', ' ']);
                    for n in names.split(',') {
                        let n = n.split(" as ").last().unwrap_or("").trim();
                        let n = n.rsplit("::").next().unwrap_or(n);
                        if !n.is_empty() {
                            out.insert(n.to_owned(), module.trim().to_owned());
                        }
                    }
                }
                text.clear();
            }
        }
    }
    out
}

/// The modules `text` names as `crate::x` (or `crate::X`, re-exported
/// by the root from a module: `exports`), comments left out.
fn named_modules(text: &str, exports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            match exports.get(&name) {
                Some(module) => {
                    out.insert(module.clone());
                }
                None if name.starts_with(|c: char| c.is_ascii_lowercase()) => {
                    out.insert(name);
                }
                None => {}
            }
        }
    }
    out
}

/// The pairs of top-level modules of the crate at `src` that name each
/// other.
pub fn pairs(src: &Path) -> Result<BTreeSet<(String, String)>> {
    let exports = root_exports(&std::fs::read_to_string(src.join("lib.rs"))?);
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
            let names = named_modules(&text, &exports);
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
    if known.is_empty() {
        println!("ok: skmem's modules depend one way");
    } else {
        println!(
            "ok: skmem's modules depend one way but for {} known pairs",
            known.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_code_count_and_names_in_comments_do_not() {
        let t = "use crate::arena::Arena; // crate::publish\n/// see [`crate::lend`]\nlet x = crate::util::lock(&m);";
        let n: Vec<String> = named_modules(t, &BTreeMap::new()).into_iter().collect();
        assert_eq!(n, ["arena", "util"]);
    }

    #[test]
    fn a_root_re_export_names_its_module() {
        let lib = "pub use error::{Error, Result};\npub use arena::registry as stats;\npub use channel::{\n    Channel, Frame,\n};\n";
        let exports = root_exports(lib);
        assert_eq!(exports["Error"], "error");
        assert_eq!(exports["stats"], "arena");
        assert_eq!(exports["Frame"], "channel");
        let n: Vec<String> = named_modules(
            "fn f() -> crate::Result<()> { crate::stats::x() }",
            &exports,
        )
        .into_iter()
        .collect();
        assert_eq!(n, ["arena", "error"]);
    }

    #[test]
    fn the_core_names_its_modules_one_way() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        check(root).unwrap();
    }
}
