//! One style for rates in every command's text output: packets as Mpps,
//! bits as Gbit/s, three decimals (as `gen`, `fwd`, `demo` and `fwd
//! --workers` print them; JSON carries the raw per-second figures).

/// Packets per second as `  1.234 Mpps`.
pub fn mpps(pps: f64) -> String {
    format!("{:>7.3} Mpps", pps / 1e6)
}

/// Bits per second as ` 1.234 Gbit/s`.
pub fn gbits(bps: f64) -> String {
    format!("{:>6.3} Gbit/s", bps / 1e9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_read_the_same_everywhere() {
        assert_eq!(super::mpps(1_234_567.0), "  1.235 Mpps");
        assert_eq!(super::gbits(812_000_000.0), " 0.812 Gbit/s");
        assert_eq!(super::mpps(0.0), "  0.000 Mpps");
    }
}
