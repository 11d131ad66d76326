//! Thread pinning.

use anyhow::{Context, Result};

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("sched_setaffinity(cpu {cpu})"))
}

/// Blocks every signal on the calling thread: process-directed signals
/// (SIGCHLD, SIGINT) then go to another thread of the process.
pub fn block_signals() -> Result<()> {
    // SAFETY: `set` is a local sigset_t that sigfillset initialises before
    // pthread_sigmask reads it; the old mask is not asked for (null).
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        anyhow::bail!("pthread_sigmask: {}", std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// CPU time task `pid` has run, ns (first field of `/proc/PID/schedstat`;
/// 0 when it is gone).
pub fn task_cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (non-idle, all) jiffies of `cpu` since boot, from `/proc/stat` (idle
/// and iowait count as idle); zeros when unreadable.
pub fn cpu_jiffies(cpu: usize) -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let name = format!("cpu{cpu}");
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        if f.next() != Some(name.as_str()) {
            continue;
        }
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        return (total.saturating_sub(idle), total);
    }
    (0, 0)
}

/// CPU time of thread `tid` of this process and of every process it
/// started (all their threads, their own children included), ns: what a
/// program under test ran, in process or as a child (C peer, testpmd).
pub fn thread_tree_cpu_ns(tid: u32) -> u64 {
    let me = std::process::id();
    task_cpu_ns_at(&format!("/proc/{me}/task/{tid}"))
        + children_cpu_ns(&format!("/proc/{me}/task/{tid}/children"), 3)
}

fn task_cpu_ns_at(dir: &str) -> u64 {
    std::fs::read_to_string(format!("{dir}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sum over the pids listed in a `children` file: every thread of each,
/// and (down to `depth`) their own children.
fn children_cpu_ns(children_file: &str, depth: u32) -> u64 {
    let Ok(list) = std::fs::read_to_string(children_file) else {
        return 0;
    };
    let mut sum = 0;
    for pid in list.split_whitespace() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let dir = t.path();
            let dir = dir.to_string_lossy();
            sum += task_cpu_ns_at(&dir);
            if depth > 0 {
                sum += children_cpu_ns(&format!("{dir}/children"), depth - 1);
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `sig` is blocked on the calling thread.
    fn blocked(sig: libc::c_int) -> bool {
        // SAFETY: `old` is a local sigset_t pthread_sigmask fills (a null
        // new set only queries); sigismember reads it.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old),
                0
            );
            libc::sigismember(&old, sig) == 1
        }
    }

    #[test]
    fn block_signals_blocks_only_the_calling_thread() {
        std::thread::spawn(|| {
            assert!(!blocked(libc::SIGCHLD));
            block_signals().unwrap();
            assert!(blocked(libc::SIGCHLD) && blocked(libc::SIGINT));
        })
        .join()
        .unwrap();
        std::thread::spawn(|| assert!(!blocked(libc::SIGCHLD)))
            .join()
            .unwrap();
    }
}
