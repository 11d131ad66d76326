//! What a test may leave behind, looked up — so a test can prove it left
//! nothing: [`check_gone`] after its pairs are dropped.

use std::process::Command;

use crate::{NetnsPair, Side};

/// Output of `program args` in the root namespace.
fn root_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names listed by `ip netns list`.
pub fn netns_list() -> Result<Vec<String>, String> {
    Ok(root_output("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Interface names of the root namespace.
pub fn root_ifnames() -> Result<Vec<String>, String> {
    Ok(root_output("ip", &["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect())
}

/// The names of a pair's namespaces and interfaces, to check with
/// [`check_gone`] once it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairNames {
    /// Both namespaces.
    pub namespaces: Vec<String>,
    /// Both veth ends.
    pub interfaces: Vec<String>,
}

impl NetnsPair {
    /// Its namespaces' and interfaces' names.
    pub fn names(&self) -> PairNames {
        PairNames {
            namespaces: vec![
                self.ns_name(Side::A).to_owned(),
                self.ns_name(Side::B).to_owned(),
            ],
            interfaces: vec![
                self.ifname(Side::A).to_owned(),
                self.ifname(Side::B).to_owned(),
            ],
        }
    }
}

/// Checks that nothing of a pair named `names` is left: no namespace
/// listed or in `/var/run/netns`, no interface in the root namespace.
pub fn check_gone(names: &PairNames) -> Result<(), String> {
    let list = netns_list()?;
    let links = root_ifnames()?;
    for n in &names.namespaces {
        if list.contains(n) {
            return Err(format!("namespace {n} still listed: {list:?}"));
        }
        if std::path::Path::new(crate::NETNS_DIR).join(n).exists() {
            return Err(format!("{}/{n} still exists", crate::NETNS_DIR));
        }
    }
    if let Some(i) = names.interfaces.iter().find(|i| links.contains(i)) {
        return Err(format!("interface {i} left in the root namespace"));
    }
    Ok(())
}
