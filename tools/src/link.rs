//! The interface under a running command, watched: a forwarder whose
//! device is deleted, renamed, moved to another network namespace or given
//! another MTU must say so and stop, not run on to a false success.
//!
//! [`Link::check`] costs two syscalls (`if_nametoindex`, `SIOCGIFMTU`);
//! the commands call it on their 100 ms tick, off the packet path.

use std::io;

/// An interface as it was when the run started.
#[derive(Debug, Clone)]
pub struct Link {
    name: String,
    ifindex: u32,
    mtu: u32,
}

/// What happened to the interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkChange {
    /// No interface of that name and index any more.
    #[error(
        "interface {name} went away (deleted, renamed or moved to another network namespace); \
         the run stopped"
    )]
    Gone {
        /// Its name.
        name: String,
    },
    /// Its MTU changed: frames the run sizes by it would be dropped.
    #[error("the MTU of {name} changed from {from} to {to}; the run stopped (start it again)")]
    Mtu {
        /// Its name.
        name: String,
        /// The MTU at start.
        from: u32,
        /// The MTU now.
        to: u32,
    },
}

impl Link {
    /// The interface `name` now.
    pub fn of(name: &str) -> io::Result<Link> {
        Ok(Link {
            name: name.to_owned(),
            ifindex: skmem::sys::interface_index(name)?,
            mtu: mtu_of(name)?,
        })
    }

    /// Its MTU at start.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Whether it is still the same interface with the same MTU.
    pub fn check(&self) -> Result<(), LinkChange> {
        let gone = || LinkChange::Gone {
            name: self.name.clone(),
        };
        match skmem::sys::interface_index(&self.name) {
            Ok(i) if i == self.ifindex => {}
            _ => return Err(gone()),
        }
        match mtu_of(&self.name) {
            Ok(m) if m == self.mtu => Ok(()),
            Ok(m) => Err(LinkChange::Mtu {
                name: self.name.clone(),
                from: self.mtu,
                to: m,
            }),
            Err(_) => Err(gone()),
        }
    }
}

/// `SIOCGIFMTU` for `name`, in this thread's network namespace.
pub fn mtu_of(name: &str) -> io::Result<u32> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: an all-zero ifreq is valid: an empty name and a zero union.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name"),
        ));
    }
    for (d, &s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    use std::os::fd::AsRawFd as _;
    // SAFETY: `sock` is an open socket for the call's duration and `req`
    // a valid ifreq with a NUL-terminated name; SIOCGIFMTU writes only the
    // union's `ifru_mtu` inside `req`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the MTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other(format!("MTU {mtu} of {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_stays() {
        let lo = Link::of("lo").unwrap();
        assert!(lo.mtu() >= 1500, "{lo:?}");
        assert_eq!(lo.check(), Ok(()));
    }

    #[test]
    fn a_missing_interface_is_an_error_and_a_changed_one_is_named() {
        assert!(Link::of("skm-no-such0").is_err());
        assert!(mtu_of("a name far too long for IFNAMSIZ").is_err());
        let mut lo = Link::of("lo").unwrap();
        lo.ifindex += 1000;
        assert_eq!(lo.check(), Err(LinkChange::Gone { name: "lo".into() }));
        let mut lo = Link::of("lo").unwrap();
        lo.mtu += 1;
        assert!(matches!(lo.check(), Err(LinkChange::Mtu { .. })));
    }
}
