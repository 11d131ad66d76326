//! `fwd`'s flag combinations that clap's `conflicts_with` cannot express:
//! flags that apply to some `--mode`s only, whether typed with their
//! default value or not ([`FwdArgs::typed`]). Each refusal names the
//! flag and says why, before anything is attached; a flag the run would
//! not use is never accepted in silence.

use super::{FwdArgs, Mode};
use crate::check::Usage;

/// The txonly frame size when `--size` is not given.
pub(super) const DEFAULT_SIZE: usize = 64;

/// Refuses what `args` asks for that its mode would not do.
pub(super) fn check(args: &FwdArgs) -> Result<(), Usage> {
    if !args.cpus.is_empty() && args.cpus.len() != args.queues.len() {
        return Err(Usage(format!(
            "--cpu: give one per --queue ({} queue(s), {} CPU(s))",
            args.queues.len(),
            args.cpus.len()
        )));
    }
    let refuse = |flag: &str, why: &str| Err(Usage(format!("{flag}: {why}")));
    if args.mode == Mode::Txonly {
        // The txonly loop sends and never waits for a frame.
        let waits = "rxdrop or l2fwd only (txonly never waits for frames)";
        if args.poll {
            return refuse("--poll", waits);
        }
        if args.coalesce.is_some() {
            return refuse("--coalesce", waits);
        }
        if args.typed.spin_us {
            return refuse("--spin-us", waits);
        }
        if args.typed.spin_max_us {
            return refuse("--spin-max-us", waits);
        }
        if args.allow_fifo.is_some() || args.fifo.is_some() {
            return refuse(
                if args.fifo.is_some() {
                    "--fifo"
                } else {
                    "--allow-fifo"
                },
                "rxdrop or l2fwd only (txonly never sleeps, and a SCHED_FIFO thread \
                 that never sleeps keeps everything else off its CPU)",
            );
        }
    } else {
        let sends = "txonly only (rxdrop and l2fwd handle the frames that arrive)";
        if args.typed.count {
            return refuse("--count", sends);
        }
        if args.typed.size {
            return refuse("--size", sends);
        }
    }
    Ok(())
}

/// The flags of [`FwdArgs`] with defaults that some modes do not use,
/// and whether each was typed (clap's value source; the values alone
/// cannot tell `--size 64` from no `--size`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Typed {
    /// `--spin-us`.
    pub spin_us: bool,
    /// `--spin-max-us`.
    pub spin_max_us: bool,
    /// `--size`.
    pub size: bool,
    /// `--count`.
    pub count: bool,
}

impl FwdArgs {
    /// Records which flags with defaults `matches` (the `fwd`
    /// subcommand's) got from the command line.
    pub fn note_typed(&mut self, matches: &clap::ArgMatches) {
        let typed =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        self.typed = Typed {
            spin_us: typed("spin_us"),
            spin_max_us: typed("spin_max_us"),
            size: typed("size"),
            count: typed("count"),
        };
    }
}
