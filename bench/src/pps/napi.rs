//! Threaded NAPI for the `threaded` layout: switch it on for a veth end
//! and pin that end's NAPI kthreads to a CPU.
//!
//! veth accepts `threaded = 1` only while it has NAPI instances, i.e. once
//! an XDP program is attached (or GRO is on), and refuses to switch it off
//! again (EIO): a layout that wants it gets a fresh pair. Detaching and
//! re-attaching XDP deletes and re-creates the NAPI instance, and with it
//! the kthread (`napi/IF-<napi id>`, a new pid): pin again after every
//! attach.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One NAPI kthread and where it was pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NapiThread {
    /// Its name (`napi/IF-<napi id>`).
    pub name: String,
    /// Its pid (root pid namespace).
    pub pid: u32,
    /// The CPU it was pinned to.
    pub cpu: usize,
}

/// Switches threaded NAPI on for `ifname` in namespace `ns` (a no-op when
/// it is on). Written through `ip netns exec`, whose private `/sys` shows
/// the namespace's devices (a thread that only `setns`'d sees the root's).
pub fn enable_threaded(ns: &str, ifname: &str) -> Result<()> {
    let path = format!("/sys/class/net/{ifname}/threaded");
    let script = format!("[ \"$(cat {path})\" = 1 ] || echo 1 > {path}");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &script])
        .output()
        .context("running `ip netns exec ... sh`")?;
    if !out.status.success() {
        bail!(
            "switching threaded NAPI on for {ifname} in {ns}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        );
    }
    Ok(())
}

/// The NAPI kthreads of `ifname` (kthread names are not truncated to 15
/// bytes in `/proc/PID/comm` on this kernel).
pub fn threads_of(ifname: &str) -> Vec<(String, u32)> {
    let prefix = format!("napi/{ifname}-");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v: Vec<(String, u32)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim_end();
            comm.starts_with(&prefix).then(|| (comm.to_owned(), pid))
        })
        .collect();
    v.sort();
    v
}

/// Pins every NAPI kthread of `ifname` to `cpu`; fails when there is none
/// (threaded NAPI is off, or the interface has no NAPI instance).
pub fn pin(ifname: &str, cpu: usize) -> Result<Vec<NapiThread>> {
    let threads = threads_of(ifname);
    if threads.is_empty() {
        bail!("no NAPI kthread napi/{ifname}-* (threaded NAPI off, or no XDP program attached)");
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let mut out = Vec::new();
    for (name, pid) in threads {
        let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
            continue;
        };
        match rustix::thread::sched_setaffinity(Some(p), &set) {
            Ok(()) => out.push(NapiThread { name, pid, cpu }),
            // Gone since the scan (its NAPI instance was deleted).
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("pinning {name} (pid {pid}) to cpu{cpu}"))
            }
        }
    }
    if out.is_empty() {
        bail!("the NAPI kthreads of {ifname} went away while being pinned");
    }
    Ok(out)
}

/// [`enable_threaded`], then [`pin`].
pub fn ensure(ns: &str, ifname: &str, cpu: usize) -> Result<Vec<NapiThread>> {
    enable_threaded(ns, ifname)?;
    pin(ifname, cpu)
}
