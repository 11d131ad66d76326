//! What the integration tests share: the scripted child
//! (`skmem-arena-child`, driven line by line over its stdin/stdout, no
//! sleeps), the root checks, skmemctl run as a user runs it, and what a
//! run may leave behind.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

pub mod left;
pub mod skmemctl;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The scripted child's binary.
pub const CHILD: &str = env!("CARGO_BIN_EXE_skmem-arena-child");
/// skmemctl.
pub const SKMEMCTL: &str = env!("CARGO_BIN_EXE_skmemctl");

/// Whether the test runs as root; says why it skips when not.
pub fn root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skmem_netns::skip(what, "needs root (uprobes, tracepoints, bpffs, /run/skmem)");
    }
    root
}

/// Whether network namespaces can be made here (root, `ip`); says why
/// `what` skips when not.
pub fn netns_ready(what: &str) -> bool {
    match skmem_netns::skip_reason() {
        Some(r) => {
            skmem_netns::skip(what, &r);
            false
        }
        None => true,
    }
}

/// The scripted child.
pub struct Kid {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
    pub pid: u32,
}

impl Kid {
    pub fn spawn() -> Kid {
        let kid = Kid::spawn_by(Command::new(CHILD));
        assert_eq!(kid.pid, kid.child.id());
        kid
    }

    /// The child started by `cmd` (which may wrap it, e.g. in `unshare`);
    /// `pid` is the pid it says it has.
    pub fn spawn_by(mut cmd: Command) -> Kid {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("child said {line:?}"));
        Kid {
            child,
            stdin,
            stdout,
            pid,
        }
    }

    /// Sends one command; returns the words of its `ok` answer (or the
    /// whole `err` line as the single word).
    pub fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        let answer = answer.trim();
        match answer.strip_prefix("ok") {
            Some(rest) => rest.split_whitespace().map(str::to_owned).collect(),
            None => vec![answer.to_owned()],
        }
    }

    pub fn ok_num(&mut self, line: &str, i: usize) -> u64 {
        let words = self.cmd(line);
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{line}: {words:?}"))
    }

    pub fn finish(mut self) {
        writeln!(self.stdin, "exit").ok();
        self.child.wait().unwrap();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
