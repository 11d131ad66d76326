//! `skmemctl`: the command-line face of skmem.
//!
//! Exit codes: 0 success; 1 failure (the message says what to do); 2 bad
//! command line (clap's, or a value the machine refuses: [`check::Usage`]).

/// `println!` that survives a closed stdout: see [`output::line()`].
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::line(format_args!($($t)*))
    };
}

mod check;
mod demo;
mod fwd;
mod gen;
mod lend;
mod link;
mod output;
mod prometheus;
mod soak;
mod stale;
mod stats;
mod thread;
mod units;
mod watch;
mod workers;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// Set by SIGINT/SIGTERM/SIGHUP: every loop checks it and winds down
/// cleanly.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores
        // to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// skmem's command-line tool.
#[derive(Parser)]
#[command(
    name = "skmemctl",
    version,
    about = "skmem: an AF_XDP packet buffer pool on Skywalk's memory model"
)]
struct Cli {
    /// More log lines on stderr: -v info, -vv debug, -vvv trace (RUST_LOG,
    /// when set, decides instead, e.g. RUST_LOG=skmem=debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The tour: l2fwd over AF_XDP on a veth pair made for the occasion, live.
    Demo(demo::DemoArgs),
    /// Forward packets over AF_XDP on skmem's pool: rxdrop, txonly, l2fwd.
    Fwd(fwd::FwdArgs),
    /// Send UDP frames fast from XDP (BPF_PROG_RUN live frames; root).
    Gen(gen::GenArgs),
    /// Watch arena events live (eBPF uprobes and tracepoints; root).
    Watch(watch::WatchArgs),
    /// List every live arena on the host (from the observers' pinned map; root).
    Stats(stats::StatsArgs),
    /// Lend a nexus arena to mapper processes on a Unix socket (the owner).
    Offer(lend::OfferArgs),
    /// Map an arena another process offers (the mapper).
    Map(lend::MapArgs),
    /// Soak: l2fwd through a worker for a while, with churn (workers killed,
    /// sockets rebound, arenas redirected and defunct, the observer
    /// restarted); the books and this process's memory and descriptors
    /// must stay flat.
    Soak(soak::SoakArgs),
    /// Process the packets an owner lends (skmemctl fwd --workers): one worker.
    Worker(workers::WorkerArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of skmemctl, or of one command.
    Man {
        /// The command (fwd, gen, ...); none: skmemctl's own page.
        command: Option<String>,
    },
}

impl Cmd {
    /// Whether the command was asked for JSON (then errors are JSON too).
    fn json(&self) -> bool {
        match self {
            Cmd::Demo(a) => a.json,
            Cmd::Fwd(a) => a.json,
            Cmd::Gen(a) => a.json,
            Cmd::Watch(a) => a.json,
            Cmd::Stats(a) => a.json || a.format == stats::Format::Json,
            Cmd::Soak(a) => a.json,
            _ => false,
        }
    }

    /// The capabilities the command needs, for an EPERM's message.
    fn capabilities(&self) -> &'static str {
        match self {
            Cmd::Demo(_) => "CAP_SYS_ADMIN (namespaces), CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON",
            Cmd::Fwd(_) | Cmd::Gen(_) => "CAP_NET_ADMIN and CAP_BPF",
            Cmd::Watch(_) => "CAP_BPF and CAP_PERFMON",
            Cmd::Stats(_) => "CAP_DAC_OVERRIDE (the root-only /run/skmem), CAP_BPF and CAP_PERFMON",
            _ => "the owner's permission (see --allow-uid of skmemctl offer)",
        }
    }
}

/// The error and its causes, each said once: a cause whose text its
/// parent already ends with (`connect: ENOENT` above `ENOENT`) is left out.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether an error chain ends in "permission denied" from the kernel.
fn is_eperm(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::PermissionDenied;
        }
        let s = c.to_string();
        s.contains("Operation not permitted") || s.contains("EPERM")
    })
}

/// Logging to stderr: RUST_LOG if set, else by -v; colour only on a
/// terminal.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// `skmemctl man [COMMAND]`.
fn print_man(command: Option<&str>) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    cmd.build();
    let page = match command {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .cloned()
            .map(|c| {
                // The page's title; clap takes a `&'static str`, and this
                // process prints one page and exits.
                let full: &'static str = Box::leak(format!("skmemctl-{name}").into_boxed_str());
                c.name(full)
            })
            .ok_or_else(|| check::Usage(format!("man: no command `{name}`")))?,
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    outln!("{}", String::from_utf8_lossy(&buf).trim_end());
    Ok(())
}

/// The command line, as `Cli::parse` reads it, and for `fwd` which of
/// its flags with defaults were typed (clap's derive keeps only values).
fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches)
        .map_err(|e| e.format(&mut Cli::command()))
        .unwrap_or_else(|e| e.exit());
    if let (Cmd::Fwd(args), Some(("fwd", fwd))) = (&mut cli.cmd, matches.subcommand()) {
        args.note_typed(fwd);
    }
    cli
}

fn main() -> ExitCode {
    let cli = parse();
    init_logging(cli.verbose);
    install_signal_handlers();
    // Permission is found out by trying: each command's first privileged
    // step fails with EPERM, and the message below names what it needs.
    let json = cli.cmd.json();
    let caps = cli.cmd.capabilities();
    let result = match cli.cmd {
        Cmd::Demo(args) => demo::run(args, &STOP),
        Cmd::Fwd(args) => fwd::run(args, &STOP),
        Cmd::Gen(args) => gen::run(args, &STOP),
        Cmd::Watch(args) => watch::run(args, &STOP),
        Cmd::Stats(args) => stats::run(args),
        Cmd::Offer(args) => lend::run_offer(args, &STOP),
        Cmd::Map(args) => lend::run_map(args, &STOP),
        Cmd::Worker(args) => workers::run_worker(args, &STOP),
        Cmd::Soak(args) => soak::run(args, &STOP),
        Cmd::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "skmemctl", &mut out);
            outln!("{}", String::from_utf8_lossy(&out).trim_end());
            Ok(())
        }
        Cmd::Man { command } => print_man(command.as_deref()),
    };
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    let said = message(&e);
    let (message, code) = if e.downcast_ref::<check::Usage>().is_some() {
        (said, 2)
    } else if is_eperm(&e) && !said.contains("needs root") {
        (
            format!("{said}\n  (EPERM: this needs {caps}; run it as root, e.g. with sudo)"),
            1,
        )
    } else {
        (said, 1)
    };
    if json {
        output::json_error(&message, code);
    } else {
        eprintln!("skmemctl: {message}");
    }
    ExitCode::from(code)
}
