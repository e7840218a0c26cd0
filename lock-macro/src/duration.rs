//! Duration literals: `"500ms"`, `"10s"`, `"1m30s"`, `"2h"`, checked at compile time.

/// The units a duration literal may use.
const UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Parses a duration literal into whole milliseconds. The error is a sentence for the user.
pub(crate) fn parse_millis(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty duration; write it like \"500ms\", \"10s\", \"1m30s\" or \"2h\"".into());
    }
    if text.chars().any(char::is_whitespace) {
        // "10 s", "1m 30s": a duration but for its spaces.
        let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if parse_millis(&joined).is_ok() {
            return Err(format!(
                "spaces are not allowed in durations: write \"{joined}\" instead of \"{text}\""
            ));
        }
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a number at `{rest}` in \"{text}\"; write durations like \"500ms\", \
                 \"10s\", \"1m30s\" or \"2h\""
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &after[..unit_len];
        let Some((_, scale)) = UNITS.iter().find(|(known, _)| *known == unit) else {
            return Err(if after.starts_with('.') {
                format!("fractions are not supported in \"{text}\"; use a smaller unit, like \"1500ms\"")
            } else if unit.is_empty() {
                format!("`{number}` has no unit in \"{text}\"; add one of: ms, s, m, h")
            } else {
                format!("unknown unit `{unit}` in \"{text}\"; use one of: ms, s, m, h")
            });
        };
        let overflow = || format!("duration \"{text}\" is too large");
        let value: u64 = number.parse().map_err(|_| overflow())?;
        let millis = value.checked_mul(*scale).ok_or_else(overflow)?;
        total = total.checked_add(millis).ok_or_else(overflow)?;
        rest = &after[unit_len..];
    }
    // Redis keeps TTLs as signed 64-bit milliseconds.
    if total > i64::MAX as u64 {
        return Err(format!("duration \"{text}\" is too large"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn accepts_units_and_sums() {
        assert_eq!(parse_millis("500ms"), Ok(500));
        assert_eq!(parse_millis("10s"), Ok(10_000));
        assert_eq!(parse_millis("1m30s"), Ok(90_000));
        assert_eq!(parse_millis("2h"), Ok(7_200_000));
        assert_eq!(parse_millis("1h1m1s1ms"), Ok(3_661_001));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn a_space_is_named_as_such() {
        let err = parse_millis("10 s").unwrap_err();
        assert!(
            err.contains("spaces are not allowed") && err.contains("\"10s\""),
            "{err}"
        );
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(parse_millis("").unwrap_err().contains("empty"));
        assert!(parse_millis("10").unwrap_err().contains("no unit"));
        assert!(parse_millis("10sec")
            .unwrap_err()
            .contains("unknown unit `sec`"));
        assert!(parse_millis("5d").unwrap_err().contains("unknown unit `d`"));
        assert!(parse_millis("1.5s").unwrap_err().contains("fractions"));
        assert!(parse_millis("ten seconds")
            .unwrap_err()
            .contains("expected a number"));
        assert!(parse_millis("1s ")
            .unwrap_err()
            .contains("spaces are not allowed"));
        assert!(parse_millis("1m 30s")
            .unwrap_err()
            .contains("write \"1m30s\""));
        assert!(parse_millis("99999999999999999999s")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_millis("9999999999999999h")
            .unwrap_err()
            .contains("too large"));
    }
}
