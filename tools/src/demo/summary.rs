//! `skmemctl demo`'s end: the summary of the run (JSON, or lines for a
//! reader of 80 columns) and the verdict that makes the exit code.

use std::sync::atomic::Ordering;

use anyhow::{bail, Result};
use serde::Serialize;
use skmem::channel::FrameAccount;

use super::{Demo, DemoArgs, Probes};

/// The end of the run.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    seconds: f64,
    sent: u64,
    returned: u64,
    in_order_and_intact: bool,
    frames_accounted: bool,
    xdp_mode: String,
    events_seen: Vec<String>,
    errors: Vec<String>,
    /// With workers: frames taken back from the killed worker or dropped
    /// for a full ring (in the pool again, not forwarded).
    lost_to_workers: u64,
    /// With workers: the worker killed halfway, and its replacement.
    killed: Option<u32>,
    replacement: Option<u32>,
}

impl Demo<'_> {
    /// The report of the run, from the forwarder's final `account`, the
    /// generator's `errors`, the events the probes saw and, with workers,
    /// the one `killed` and its replacement.
    pub(super) fn summary(
        &self,
        account: &FrameAccount,
        errors: Vec<String>,
        probes: &Probes,
        killed: (Option<u32>, Option<u32>),
    ) -> Summary {
        Summary {
            seconds: self.start.elapsed().as_secs_f64(),
            sent: self.flow.sent.load(Ordering::Relaxed),
            returned: self.flow.back.load(Ordering::Relaxed),
            in_order_and_intact: errors.is_empty(),
            frames_accounted: account.check(true).is_ok(),
            xdp_mode: self
                .fwd
                .xdp_mode
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            events_seen: probes.seen.iter().map(|e| e.event.to_owned()).collect(),
            errors,
            lost_to_workers: self.fwd.lost.load(Ordering::Relaxed),
            killed: killed.0,
            replacement: killed.1,
        }
    }
}

/// The demo's verdict: an error unless every frame came back (or was taken
/// back from a worker), in order and intact, every frame was accounted and,
/// with workers, the killed one was replaced.
pub(super) fn verdict(args: &DemoArgs, summary: &Summary) -> Result<()> {
    let all_back = summary.sent == summary.returned + summary.lost_to_workers;
    let replaced = args.workers == 0 || summary.replacement.is_some();
    if !all_back || !summary.in_order_and_intact || !summary.frames_accounted || !replaced {
        bail!("the demo found a problem (see above)");
    }
    Ok(())
}

/// The summary: JSON, or what a reader of 80 columns sees.
pub(super) fn say_summary(
    args: &DemoArgs,
    summary: &Summary,
    account: &FrameAccount,
    observed: bool,
) -> Result<()> {
    if args.json {
        return crate::output::json("demo_summary", summary);
    }
    outln!();
    outln!(
        "summary ({:.1} s, XDP {}):",
        summary.seconds,
        summary.xdp_mode
    );
    outln!("  frames sent      {}", summary.sent);
    if args.workers > 0 {
        outln!(
            "  frames returned  {} + {} {}\n    (+ taken back from the killed worker or dropped for a full ring)",
            summary.returned,
            summary.lost_to_workers,
            tick_mark(summary.sent == summary.returned + summary.lost_to_workers)
        );
        if let (Some(k), Some(r)) = (summary.killed, summary.replacement) {
            outln!("  worker {k} SIGKILLed halfway; worker {r} took its slot");
        }
    } else {
        outln!(
            "  frames returned  {} {}",
            summary.returned,
            tick_mark(summary.sent == summary.returned)
        );
    }
    outln!(
        "  in order, intact {}",
        tick_mark(summary.in_order_and_intact)
    );
    outln!(
        "  frames accounted {} (pool {} + slots {} + app {} + lent {}\n    + kernel RX {} + kernel TX {} = {})",
        tick_mark(summary.frames_accounted),
        account.pool,
        account.staged,
        account.app,
        account.lent,
        account.kernel_rx,
        account.kernel_tx,
        account.total
    );
    if observed {
        let seen = if summary.events_seen.is_empty() {
            "none".to_owned()
        } else {
            wrap(&summary.events_seen.join(", "), 40, "\n    ")
        };
        outln!("  lifecycle events the probes saw: {seen}");
    }
    for e in &summary.errors {
        outln!("  error: {e}");
    }
    outln!("  namespaces and veth removed");
    Ok(())
}

fn tick_mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// `text` cut at spaces into lines of at most `width` characters (a word
/// longer than that stays whole), joined by `sep`.
fn wrap(text: &str, width: usize, sep: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join(sep)
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_cuts_at_spaces_within_the_width() {
        let w = wrap("create, map, bind, map, unmap, unbind, destroy", 20, "\n");
        for line in w.lines() {
            assert!(line.chars().count() <= 20, "{line}");
        }
        assert_eq!(
            w.replace('\n', " "),
            "create, map, bind, map, unmap, unbind, destroy"
        );
        assert_eq!(
            wrap("averyveryverylongword x", 5, "|"),
            "averyveryverylongword|x"
        );
    }
}
