//! Thread pinning.

use anyhow::{Context, Result};

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("sched_setaffinity(cpu {cpu})"))
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
