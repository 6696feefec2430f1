//! Command-line values that need parsing beyond clap's: durations (`30s`, `500ms`, `2m`)
//! and comma-separated lists.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Parses `30s`, `1.5s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 30s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => bail!("unknown duration unit {other:?} in {text:?}: use ms, s, m or h"),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        bail!("{text:?} is not a non-negative duration");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Splits a comma-separated list, trimming and dropping empty items.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses a comma-separated list of fractions in (0, 2].
pub fn parse_fractions(text: &str) -> Result<Vec<f64>> {
    parse_list(text)
        .iter()
        .map(|item| {
            let f: f64 = item
                .parse()
                .with_context(|| format!("{item:?} is not a number"))?;
            if !(f > 0.0 && f <= 2.0) {
                bail!("rate fraction {f} is outside (0, 2]");
            }
            Ok(f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").expect("ok"), Duration::from_secs(30));
        assert_eq!(
            parse_duration("500ms").expect("ok"),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("2m").expect("ok"), Duration::from_secs(120));
        assert_eq!(
            parse_duration("1.5s").expect("ok"),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("7").expect("ok"), Duration::from_secs(7));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn lists_and_fractions_parse() {
        assert_eq!(
            parse_list("etcd, redis,,dialkv-pb"),
            ["etcd", "redis", "dialkv-pb"]
        );
        assert_eq!(parse_fractions("0.25,0.5").expect("ok"), [0.25, 0.5]);
        assert!(parse_fractions("0").is_err());
        assert!(parse_fractions("x").is_err());
    }
}
