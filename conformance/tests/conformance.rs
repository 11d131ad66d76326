//! The conformance suite as tests: one per case and mode, named after the
//! case (`stat_fill_empty_drv`), then the case × mode table and the
//! closing line `conformance: N passed, N failed, N skipped`.
//!
//! `cargo xtask conformance` runs this; so does `cargo xtask test`. Pass
//! a name (or part of one) to run fewer: `cargo test -p
//! skmem-conformance --test conformance -- stat_`.

// A test target sees every dependency of its package; whether the package
// uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use skmem_conformance::table::Table;
use skmem_conformance::{run, Mode, Verdict, CASES};

/// Where to write the table in Markdown, if set.
const MARKDOWN_ENV: &str = "SKMEM_CONFORMANCE_MARKDOWN";

fn main() {
    let mut args = Arguments::from_args();
    // One case at a time: each makes its own veth pair, and on a machine
    // of two CPUs cases running side by side would only slow each other
    // (`--test-threads N` still says otherwise).
    args.test_threads.get_or_insert(1);
    let table = Arc::new(Mutex::new(Table::default()));
    // Not root: every case would skip for the same reason, so each is
    // listed as ignored with it — unless this run may not skip.
    let cannot =
        skmem_netns::skip_reason().filter(|_| std::env::var_os(skmem_netns::NO_SKIP_ENV).is_none());
    if let Some(why) = &cannot {
        eprintln!("conformance: every case skipped: {why}");
    }
    let mut trials = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        for mode in Mode::ALL {
            let table = Arc::clone(&table);
            let trial = Trial::test(case.test_name(mode), move || {
                let outcome = run(case, mode);
                let result = match &outcome {
                    Ok(()) => Ok(()),
                    Err(Verdict::Skipped(why)) => {
                        eprintln!("skipped: {why}");
                        Ok(())
                    }
                    Err(Verdict::Failed(why)) => Err(Failed::from(why.as_str())),
                };
                table
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(i, mode, outcome);
                result
            });
            trials.push(trial.with_ignored_flag(cannot.is_some()));
        }
    }
    let listing = args.list;
    let conclusion = libtest_mimic::run(&args, trials);
    if !listing {
        let table = table.lock().unwrap_or_else(|p| p.into_inner());
        println!("\n{}", table.render(CASES));
        // `cargo xtask conformance` writes the Markdown table into
        // CONFORMANCE.md from here.
        if let Some(path) = std::env::var_os(MARKDOWN_ENV) {
            if let Err(e) = std::fs::write(&path, table.markdown(CASES)) {
                eprintln!("conformance: writing {}: {e}", path.to_string_lossy());
            }
        }
    }
    conclusion.exit();
}
