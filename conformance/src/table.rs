//! The result table: case × mode, then why each skip or failure happened,
//! then the closing line `conformance: N passed, N failed, N skipped`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Case, Mode, Outcome, Verdict};

/// Outcomes gathered as the cases run (in any order).
#[derive(Debug, Default)]
pub struct Table {
    /// (case index in [`crate::CASES`], mode) → outcome.
    cells: BTreeMap<(usize, usize), Outcome>,
}

impl Table {
    /// Records case `case` (its index in the case list) in `mode`.
    pub fn record(&mut self, case: usize, mode: Mode, outcome: Outcome) {
        let m = Mode::ALL.iter().position(|&x| x == mode).unwrap_or(0);
        self.cells.insert((case, m), outcome);
    }

    /// (passed, failed, skipped) over the recorded cells.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for o in self.cells.values() {
            match o {
                Ok(()) => c.0 += 1,
                Err(Verdict::Failed(_)) => c.1 += 1,
                Err(Verdict::Skipped(_)) => c.2 += 1,
            }
        }
        c
    }

    /// The table of `cases` (cells not run show `-`), the reasons, and the
    /// closing line.
    pub fn render(&self, cases: &[Case]) -> String {
        let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
        let mut out = String::new();
        let _ = write!(out, "{:width$}", "case");
        for m in Mode::ALL {
            let _ = write!(out, "  {:>8}", m.heading());
        }
        out.push('\n');
        let mut notes = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            if !(0..Mode::ALL.len()).any(|m| self.cells.contains_key(&(i, m))) {
                continue;
            }
            let _ = write!(out, "{:width$}", case.name);
            for (m, mode) in Mode::ALL.iter().enumerate() {
                let cell = match self.cells.get(&(i, m)) {
                    None => "-",
                    Some(Ok(())) => "pass",
                    Some(Err(v)) => {
                        notes.push(format!("{} {}: {v}", case.name, mode.heading()));
                        match v {
                            Verdict::Failed(_) => "FAIL",
                            Verdict::Skipped(_) => "skip",
                        }
                    }
                };
                let _ = write!(out, "  {cell:>8}");
            }
            out.push('\n');
        }
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
        let (p, f, s) = self.counts();
        let _ = writeln!(out, "conformance: {p} passed, {f} failed, {s} skipped");
        out
    }
}

impl Table {
    /// The table in Markdown, for CONFORMANCE.md: case × mode, each case
    /// with what it checks; then the reasons for skips and failures, and
    /// where skmem's cases differ from the kernel's.
    pub fn markdown(&self, cases: &[Case]) -> String {
        let mut out = String::from("| case | checks |");
        for m in Mode::ALL {
            let _ = write!(out, " {} |", m.heading());
        }
        out.push_str("\n|---|---|");
        for _ in Mode::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        let mut notes = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            let _ = write!(out, "| `{}` | {} |", case.name, case.checks);
            for (m, mode) in Mode::ALL.iter().enumerate() {
                let cell = match self.cells.get(&(i, m)) {
                    None => "–",
                    Some(Ok(())) => "✅",
                    Some(Err(v)) => {
                        notes.push(format!("- `{}` {}: {v}", case.name, mode.heading()));
                        match v {
                            Verdict::Failed(_) => "❌",
                            Verdict::Skipped(_) => "skip",
                        }
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        let (p, f, s) = self.counts();
        let _ = writeln!(out, "\nconformance: {p} passed, {f} failed, {s} skipped");
        if !notes.is_empty() {
            out.push_str("\nWhy a case did not pass:\n\n");
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
        let differs: Vec<_> = cases
            .iter()
            .filter_map(|c| c.differs.map(|d| format!("- `{}`: {d}", c.name)))
            .collect();
        if !differs.is_empty() {
            out.push_str("\nWhere skmem's case differs from the kernel's:\n\n");
            for d in differs {
                let _ = writeln!(out, "{d}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: Mode) -> Outcome {
        Ok(())
    }

    #[test]
    fn the_table_counts_each_outcome_and_says_why() {
        let cases = [
            Case {
                name: "SEND_RECEIVE",
                checks: "",
                differs: None,
                run: ok,
            },
            Case {
                name: "POLL_RX",
                checks: "",
                differs: None,
                run: ok,
            },
        ];
        let mut t = Table::default();
        t.record(0, Mode::Skb, Ok(()));
        t.record(0, Mode::Drv, Err(Verdict::Failed("lost 3".into())));
        t.record(
            1,
            Mode::BusyPoll,
            Err(Verdict::Skipped("no busy poll".into())),
        );
        let s = t.render(&cases);
        assert!(
            s.contains("SEND_RECEIVE      pass      FAIL         -"),
            "{s}"
        );
        assert!(s.contains("POLL_RX DRV+busy: skipped: no busy poll"), "{s}");
        assert!(s.contains("SEND_RECEIVE DRV: failed: lost 3"), "{s}");
        assert!(
            s.ends_with("conformance: 1 passed, 1 failed, 1 skipped\n"),
            "{s}"
        );
    }
}
