//! Durations as written in model files: `30s`, `15m`, `2h`, `3d`, `2w` and combinations (`1d2h`).

use std::fmt;

/// A span of time written in the model's duration syntax. Months and years are not allowed:
/// they have no fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    secs: i64,
}

/// Longest span a model may write: 100 years (36,500 days). Longer ones are mistakes, and
/// would overflow the time arithmetic of windows and waits.
pub const MAX_SECS: i64 = 36_500 * 86_400;

impl Span {
    /// A span of `secs` seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Span { secs }
    }
    /// Length in whole seconds (at most 100 years).
    pub const fn secs(self) -> i64 {
        self.secs
    }
    /// As a `chrono::Duration`.
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.secs)
    }

    /// Parses `1d2h`, `90d`, `15m`… The string must be one or more `<digits><unit>` pairs with
    /// units `s m h d w`, each unit at most once, largest first; `0s` is allowed, more than
    /// `MAX_SECS` (100 years) is not.
    pub fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty duration (expected e.g. 30s, 15m, 2h, 3d, 2w or 1d2h)".into());
        }
        let order = ['w', 'd', 'h', 'm', 's'];
        let mut last_rank: Option<usize> = None;
        let mut total: i64 = 0;
        let mut digits = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let Some(rank) = order.iter().position(|u| *u == c) else {
                return Err(format!(
                    "`{text}` is not a duration: unknown unit `{c}` (use s, m, h, d or w; months are not allowed)"
                ));
            };
            if digits.is_empty() {
                return Err(format!("`{text}` is not a duration: unit `{c}` has no number before it"));
            }
            if let Some(prev) = last_rank {
                if rank <= prev {
                    return Err(format!(
                        "`{text}` is not a duration: units must go from largest to smallest, each once"
                    ));
                }
            }
            last_rank = Some(rank);
            let n: i64 = digits
                .parse()
                .map_err(|_| format!("`{text}` is not a duration: number too large"))?;
            digits.clear();
            let unit = match c {
                'w' => 7 * 86_400,
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                _ => 1,
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("`{text}` is not a duration: too long"))?;
        }
        if !digits.is_empty() {
            return Err(format!(
                "`{text}` is not a duration: `{digits}` has no unit (write e.g. {digits}s, {digits}m, {digits}h or {digits}d)"
            ));
        }
        if total > MAX_SECS {
            return Err(format!("`{text}` is too long: at most 36500d (100 years)"));
        }
        Ok(Span { secs: total })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return write!(f, "0s");
        }
        let mut rest = self.secs;
        for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= len {
                write!(f, "{}{}", rest / len, unit)?;
                rest %= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(Span::parse("30s").unwrap().secs(), 30);
        assert_eq!(Span::parse("15m").unwrap().secs(), 900);
        assert_eq!(Span::parse("2h").unwrap().secs(), 7200);
        assert_eq!(Span::parse("3d").unwrap().secs(), 3 * 86_400);
        assert_eq!(Span::parse("2w").unwrap().secs(), 14 * 86_400);
        assert_eq!(Span::parse("1d2h").unwrap().secs(), 86_400 + 7200);
        assert_eq!(Span::parse("455d10m").unwrap().secs(), 455 * 86_400 + 600);
        assert_eq!(Span::parse("0s").unwrap().secs(), 0);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "3", "d", "3mo", "1y", "2h1d", "1d1d", "-3d", "3 d"] {
            assert!(Span::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations_too_long_for_time_arithmetic_are_refused() {
        // Such a span used to parse, then panic in `to_chrono` (more milliseconds than an i64
        // holds) or when taken from an event's time.
        for bad in ["9999999999999999s", "100000000w", "36600000d"] {
            let e = Span::parse(bad).expect_err(bad);
            assert!(e.contains("too long"), "{bad}: {e}");
        }
        assert_eq!(Span::parse("5200w").unwrap().secs(), 5200 * 7 * 86_400);
    }

    #[test]
    fn displays_round_trip() {
        for s in ["1d2h", "90d", "15m", "0s", "1d2h3m4s"] {
            let span = Span::parse(s).unwrap();
            assert_eq!(Span::parse(&span.to_string()).unwrap(), span);
        }
    }
}
