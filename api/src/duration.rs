//! Durations as manifests write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`.

use std::time::Duration;

/// What a duration must look like; `parse_duration` accepts exactly these
/// (up to [`TOO_LARGE`]).
pub const DURATION_PATTERN: &str = r"^([0-9]+([.][0-9]+)?(ms|s|m|h))+$";

/// The CEL rule on every duration field of the CRDs: the pattern, checked
/// by a rule rather than a schema `pattern`, so that the API server refuses
/// with [`NOT_A_DURATION`]'s words instead of the regular expression.
pub const DURATION_RULE: &str = "self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$')";

/// Why a text is not a duration, in the words both `kontinuum run` and the
/// API server use (see [`duration_message_expression`]).
pub const NOT_A_DURATION: &str =
    "write a number and a unit (ms, s, m or h) for each part, e.g. 500ms, 30s, 5m, 1h or 1h30m";

/// Why a duration that matches the pattern is still refused (by
/// `kontinuum run` and the operator; the API server's rule cannot tell).
pub const TOO_LARGE: &str = "it is too large (at most 277777777h)";

/// The CEL `messageExpression` of [`DURATION_RULE`]: the same sentence as
/// [`DurationError`]'s for a text that is not a duration.
pub fn duration_message_expression() -> String {
    format!("\"'\" + self + \"' is not a duration: {NOT_A_DURATION}\"")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a duration: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(fail(NOT_A_DURATION));
    }
    let bytes = input.as_bytes();
    let mut total_ms: f64 = 0.0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &input[start..i];
        if number.is_empty() {
            return Err(fail(NOT_A_DURATION));
        }
        if number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
            return Err(fail(NOT_A_DURATION));
        }
        let value: f64 = number.parse().map_err(|_| fail(NOT_A_DURATION))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let per_unit_ms = match &input[unit_start..i] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "" => return Err(fail(NOT_A_DURATION)),
            _ => return Err(fail(NOT_A_DURATION)),
        };
        total_ms += value * per_unit_ms;
    }
    if !total_ms.is_finite() || total_ms > 1e15 {
        return Err(fail(TOO_LARGE));
    }
    Ok(Duration::from_micros((total_ms * 1000.0).round() as u64))
}

/// A duration given on a command line or in an environment variable: the
/// manifest forms (`30s`, `1m30s`), or a plain whole number of seconds, which
/// flags such as `kontinuum-worker --grace` took before they took durations.
pub fn parse_flag_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= 1_000_000_000)
            .map(Duration::from_secs)
            .ok_or_else(|| DurationError {
                input: input.to_string(),
                reason: TOO_LARGE,
            });
    }
    parse_duration(text)
}

/// The shortest manifest form of a duration, for status and messages.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "10", "s", "10x", "1.s", ".5s", "1..2s", "-1s", "10 s", "1d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_take_durations_and_plain_seconds() {
        assert_eq!(parse_flag_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_flag_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_flag_duration("1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_flag_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["", "-1", "1.5", "10 s", "99999999999999999999", "ten"] {
            let err = parse_flag_duration(bad).unwrap_err();
            assert!(err.to_string().contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_shortest() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }
}
