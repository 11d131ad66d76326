//! What skmemctl prints: lines that survive a closed pipe, JSON records
//! with a `type`, errors as JSON under `--json`.
//!
//! `println!` panics when stdout is a pipe whose reader went away
//! (`skmemctl fwd | head -1`). Every line goes through [`line()`] instead: a
//! closed stdout stops the run as Ctrl-C does — the loops wind down and
//! tear down what they made — and nothing more is printed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// stdout's reader went away.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints one line to stdout. If stdout is closed, stops the run (as a
/// signal does) and drops this and every later line.
pub fn line(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
            crate::STOP.store(true, Ordering::Relaxed);
        }
    }
}

/// One JSON record on a line: `value`'s fields and `"type": kind`. Record
/// types and their fields are listed in README.md ("JSON records").
pub fn json<T: Serialize>(kind: &str, value: &T) -> anyhow::Result<()> {
    let s = record(kind, value)?;
    line(format_args!("{s}"));
    Ok(())
}

/// The JSON text of a record of type `kind`.
pub fn record<T: Serialize>(kind: &str, value: &T) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(value)?;
    match &mut v {
        serde_json::Value::Object(m) => {
            m.insert("type".to_owned(), kind.into());
        }
        other => {
            // An array or a scalar: wrapped, so every record is an object.
            let inner = std::mem::take(other);
            let mut m = serde_json::Map::new();
            m.insert("type".to_owned(), kind.into());
            m.insert("items".to_owned(), inner);
            v = serde_json::Value::Object(m);
        }
    }
    Ok(serde_json::to_string(&v)?)
}

/// An error as one JSON object on stderr (with `--json`).
pub fn json_error(message: &str, exit: u8) {
    let v = serde_json::json!({ "type": "error", "error": message, "exit": exit });
    eprintln!("{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct R {
        pps: f64,
    }

    #[test]
    fn records_carry_their_type() {
        let s = record("fwd_rate", &R { pps: 1.0 }).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "fwd_rate");
        assert_eq!(v["pps"], 1.0);
        let s = record("arenas", &vec![1, 2]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "arenas");
        assert_eq!(v["items"][1], 2);
    }
}
