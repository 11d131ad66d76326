//! Thread pinning, signals, CPU time, and the busy-poll socket calls.

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

/// Non-idle and all jiffies of the whole machine (the `cpu` line of
/// `/proc/stat`: every CPU's summed).
pub fn machine_jiffies() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// CPUs online (the `cpuN` lines of `/proc/stat`).
pub fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .count()
        })
        .unwrap_or(1)
        .max(1)
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

/// `SO_PREFER_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` (asm-generic/socket.h;
/// not in every libc release).
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Turns busy polling on for socket `fd`: `SO_PREFER_BUSY_POLL`,
/// `SO_BUSY_POLL` = `usecs`, `SO_BUSY_POLL_BUDGET` = `budget`.
pub fn set_busy_poll(fd: std::os::fd::BorrowedFd<'_>, usecs: u32, budget: u32) -> Result<()> {
    use std::os::fd::AsRawFd;
    for (name, value, what) in [
        (SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"),
        (libc::SO_BUSY_POLL, usecs as libc::c_int, "SO_BUSY_POLL"),
        (
            SO_BUSY_POLL_BUDGET,
            budget as libc::c_int,
            "SO_BUSY_POLL_BUDGET",
        ),
    ] {
        // SAFETY: `fd` is an open socket for the call; `value` lives across
        // it and the length passed is its size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            anyhow::bail!("setsockopt({what}): {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One busy poll: a non-blocking `recvfrom` of nothing, inside which the
/// kernel runs the socket's NAPI instance (AF_XDP polls only in syscalls).
pub fn busy_poll_once(fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    let mut nothing: [u8; 0] = [];
    match rustix::net::recv(fd, &mut nothing[..], rustix::net::RecvFlags::DONTWAIT) {
        Ok(_) => Ok(()),
        Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::BUSY => Ok(()),
        Err(e) => Err(e).context("recvfrom(MSG_DONTWAIT) on an AF_XDP socket"),
    }
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

    /// Reads an int socket option.
    fn sockopt(fd: std::os::fd::BorrowedFd<'_>, name: libc::c_int) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are locals the kernel writes through, and
        // `len` says how big `v` is.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
        v
    }

    #[test]
    fn busy_poll_options_are_set_and_an_empty_poll_is_not_an_error() {
        use std::os::fd::AsFd;
        // Any socket takes the options; a UDP one needs no interface.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = sock.as_fd();
        match set_busy_poll(fd, 20, 64) {
            Ok(()) => {}
            // A budget above the default needs CAP_NET_ADMIN.
            Err(e) if !rustix::process::geteuid().is_root() => {
                eprintln!("not root: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(sockopt(fd, libc::SO_BUSY_POLL), 20);
        assert_eq!(sockopt(fd, SO_PREFER_BUSY_POLL), 1);
        // (SO_BUSY_POLL_BUDGET cannot be read back: getsockopt lacks it.)
        // Nothing queued: EAGAIN, which a busy poll does not report.
        sock.set_nonblocking(true).unwrap();
        busy_poll_once(fd).unwrap();
    }
}
