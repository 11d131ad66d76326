//! skmemctl run as a user runs it: in a namespace of the test's pair, or
//! to its end with its exit status checked.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use skmem_netns::{NetnsPair, Side};

use super::SKMEMCTL;

/// Stops the child when dropped — at the end of a test that let it run,
/// or when the test fails half-way — as a user would: SIGTERM, so it
/// removes what it made (its statistics socket, its XDP program), and
/// SIGKILL only if it is still there 5 s later.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // SAFETY: kill has no memory preconditions; the pid is our
            // child's, not yet reaped (try_wait just said so).
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let by = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < by {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ip netns exec NS skmemctl`: skmemctl in `side`'s namespace, its
/// arguments to follow.
pub fn in_ns(pair: &NetnsPair, side: Side) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", pair.ns_name(side)])
        .arg(SKMEMCTL);
    cmd
}

/// Runs skmemctl with `args` in `side`'s namespace to its end.
pub fn run_in<I, S>(pair: &NetnsPair, side: Side, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    pair.exec(side, SKMEMCTL, args).unwrap()
}

/// Starts skmemctl with `args` in `side`'s namespace, its stderr on the
/// test's; returns it (killed if the test fails) and its stdout's lines.
pub fn spawn_in(
    pair: &NetnsPair,
    side: Side,
    args: &[&str],
) -> (KillOnDrop, Lines<BufReader<ChildStdout>>) {
    let mut child = KillOnDrop(
        in_ns(pair, side)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Runs `cmd` to its end, asserting it exits 0; returns its stdout and
/// stderr.
#[track_caller]
pub fn succeeds(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

/// [`succeeds`] for skmemctl with `args` in the root namespace.
#[track_caller]
pub fn run_ok(args: &[&str]) -> (String, String) {
    succeeds(Command::new(SKMEMCTL).args(args))
}

/// `skmemctl stats --json ARGS` run to success: its one record, and its
/// stderr.
#[track_caller]
pub fn stats_json(args: &[&str]) -> (serde_json::Value, String) {
    let out = Command::new(SKMEMCTL)
        .args(["stats", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}
