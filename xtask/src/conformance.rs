//! `cargo xtask conformance`: the kernel's AF_XDP self-test cases on skmem
//! (the `skmem-conformance` crate's test target), then their table in
//! CONFORMANCE.md.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::cmd;

/// Where the table starts in CONFORMANCE.md.
const BEGIN: &str = "<!-- BEGIN table: written by `cargo xtask conformance` -->";
/// Where it ends.
const END: &str = "<!-- END table -->";

/// Runs the cases (`filter` narrows them, as a test name filter does) and,
/// when every case ran, rewrites the table in CONFORMANCE.md. Fails when a
/// case fails, after writing the table.
pub fn run(filter: Option<&str>) -> Result<()> {
    let root = cmd::workspace_root();
    let markdown = root.join("target").join("conformance.md");
    let _ = std::fs::remove_file(&markdown);
    let mut args = vec![
        "test",
        "-p",
        "skmem-conformance",
        "--test",
        "conformance",
        "--",
    ];
    args.extend(filter);
    let mut cargo = cmd::cargo(&args);
    cargo.env("SKMEM_CONFORMANCE_MARKDOWN", &markdown);
    let ran = cmd::run("the conformance cases", &mut cargo);
    if filter.is_none() {
        write_table(root, &markdown)?;
    }
    ran
}

/// Splices the run's Markdown table into CONFORMANCE.md.
fn write_table(root: &Path, markdown: &Path) -> Result<()> {
    let table = std::fs::read_to_string(markdown)
        .with_context(|| format!("the run wrote no table at {}", markdown.display()))?;
    let path = root.join("CONFORMANCE.md");
    let doc = std::fs::read_to_string(&path).context("reading CONFORMANCE.md")?;
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(anyhow!("CONFORMANCE.md lacks the {BEGIN} / {END} markers"));
    };
    let new = format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]);
    std::fs::write(&path, new).context("writing CONFORMANCE.md")?;
    println!("conformance: table written to CONFORMANCE.md");
    Ok(())
}
