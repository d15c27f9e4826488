//! Reading the values after a directive name: a cursor over the rest of the line ([`Args`]) and
//! the parsers for booleans, whole numbers, durations and addresses, each failing with a
//! [`Problem`] that quotes the bad value.
//!
//! Stricter than Mosquitto where Mosquitto is silently wrong (it reads `lots` as 0 and `20abc` as
//! 20); as lenient where a file that works with Mosquitto would otherwise stop working (`1` and
//! `0` as booleans, a `# comment` after a single value).

use std::net::IpAddr;
use std::time::Duration;

use super::Problem;
use super::listener::BindAddress;
use super::source::is_blank;

/// The values after a directive name.
#[derive(Debug)]
pub(super) struct Args<'a> {
    rest: &'a str,
}

impl<'a> Args<'a> {
    pub(super) fn new(rest: &'a str) -> Self {
        Self { rest }
    }

    /// The next blank-separated value, or `None` at the end of the line or at a value starting
    /// with `#`, which starts a comment that runs to the end of the line (Mosquitto stops reading
    /// there for single values).
    pub(super) fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest.trim_start_matches(is_blank);
        if rest.is_empty() || rest.starts_with('#') {
            self.rest = "";
            return None;
        }
        let (token, rest) = rest.split_once(is_blank).unwrap_or((rest, ""));
        self.rest = rest;
        Some(token)
    }

    /// The next blank-separated value even if it starts with `#`: for a bridge's topic pattern,
    /// where `#` is the multi-level wildcard (Mosquitto reads it so too).
    pub(super) fn next_raw(&mut self) -> Option<&'a str> {
        let rest = self.rest.trim_start_matches(is_blank);
        if rest.is_empty() {
            return None;
        }
        let (token, rest) = rest.split_once(is_blank).unwrap_or((rest, ""));
        self.rest = rest;
        Some(token)
    }

    /// The next value, which must be there.
    pub(super) fn value(&mut self) -> Result<&'a str, Problem> {
        self.next().ok_or(Problem::MissingValue)
    }

    /// Everything up to the end of the line, blanks trimmed at both ends: the value of a path or a
    /// free-form string, which may contain spaces (and, as in Mosquitto, `#`).
    pub(super) fn rest_of_line(&mut self) -> Result<&'a str, Problem> {
        let value = self.rest.trim_matches(is_blank);
        self.rest = "";
        if value.is_empty() {
            Err(Problem::MissingValue)
        } else {
            Ok(value)
        }
    }

    /// Text left after the values a directive took, other than a comment.
    pub(super) fn leftover(&self) -> Option<&'a str> {
        let rest = self.rest.trim_matches(is_blank);
        (!rest.is_empty() && !rest.starts_with('#')).then_some(rest)
    }
}

/// `true` or `false`; also `1` and `0`, which Mosquitto accepts.
pub(super) fn boolean(text: &str) -> Result<bool, Problem> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Problem::expected("true or false", text)),
    }
}

/// A whole number in decimal, with an optional sign. A number too large for 64 bits saturates, so
/// that the caller's range check reports it.
pub(super) fn integer(text: &str) -> Result<i64, Problem> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::expected("a whole number", text));
    }
    let magnitude = digits.bytes().fold(0_i64, |n, b| {
        n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Ok(if negative { -magnitude } else { magnitude })
}

/// A whole number from `min` to `max`.
pub(super) fn integer_in(text: &str, min: i64, max: i64) -> Result<i64, Problem> {
    let n = integer(text)?;
    if n < min || n > max {
        return Err(Problem::expected(format!("a number from {min} to {max}"), text));
    }
    Ok(n)
}

/// A whole number from `min` to `max`, as a `T` (which must hold that range).
pub(super) fn number<T: TryFrom<i64>>(text: &str, min: i64, max: i64) -> Result<T, Problem> {
    let n = integer_in(text, min, max)?;
    T::try_from(n).map_err(|_| Problem::expected(format!("a number from {min} to {max}"), text))
}

/// A TCP port, 0 (any free port) to 65535.
pub(super) fn port(text: &str) -> Result<u16, Problem> {
    let n = integer(text).map_err(|_| Problem::expected("a port number from 0 to 65535", text))?;
    u16::try_from(n).map_err(|_| Problem::expected("a port number from 0 to 65535", text))
}

/// The seconds in one unit of a `persistent_client_expiration` suffix (a month is 30 days and a
/// year 365, as in Mosquitto).
fn duration_unit(suffix: char) -> Option<u64> {
    match suffix {
        'h' => Some(3600),
        'd' => Some(86_400),
        'w' => Some(7 * 86_400),
        'm' => Some(30 * 86_400),
        'y' => Some(365 * 86_400),
        _ => None,
    }
}

/// A positive duration: seconds, or a count with one of Mosquitto's suffixes `h`, `d`, `w`, `m`
/// (30 days) or `y` (365 days). Mosquitto 2.0 requires the suffix; 2.1 also takes seconds.
pub(super) fn duration(text: &str) -> Result<Duration, Problem> {
    let bad = || Problem::expected("a duration such as 3600, 12h, 14d, 2w, 6m or 1y", text);
    let mut chars = text.chars();
    let (count, unit) = match chars.next_back().and_then(duration_unit) {
        Some(unit) => (chars.as_str(), unit),
        None => (text, 1),
    };
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: u64 = count.parse().map_err(|_| bad())?;
    let seconds = count.checked_mul(unit).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

/// One of `choices`, described as `what` in the error.
pub(super) fn choice<T: Copy>(text: &str, what: &'static str, choices: &[(&str, T)]) -> Result<T, Problem> {
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| Problem::expected(what, text))
}

/// An address to bind: an IP address (IPv6 also in brackets) or a host name.
pub(super) fn bind_address(text: &str) -> Result<BindAddress, Problem> {
    if let Some(ip) = ip_address(text) {
        return Ok(BindAddress::Ip(ip));
    }
    if is_host_name(text) {
        return Ok(BindAddress::Host(text.to_owned()));
    }
    Err(Problem::expected("an IP address or host name", text))
}

/// An IP address, IPv6 also in brackets (`[::1]`).
pub(super) fn ip_address(text: &str) -> Option<IpAddr> {
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    match unbracketed {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => text.parse().ok(),
    }
}

/// A DNS host name: dot-separated labels of 1 to 63 letters, digits, `-` or `_` (which real
/// container and intranet names use), not starting or ending with `-`, 253 characters at most,
/// an optional final dot. All-numeric names are refused: they are mistyped IPv4 addresses.
pub(super) fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A network interface name for `bind_interface`: at most 15 bytes (Linux `IFNAMSIZ` less the
/// terminator), no `/`.
pub(super) fn interface_name(text: &str) -> Result<String, Problem> {
    if text.len() > 15 || text.contains('/') {
        return Err(Problem::expected(
            "a network interface name of at most 15 characters",
            text,
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_stop_at_comments_and_report_leftovers() {
        let mut args = Args::new("1883 ::1 # the loopback");
        assert_eq!(args.next(), Some("1883"));
        assert_eq!(args.next(), Some("::1"));
        assert_eq!(args.next(), None);
        assert_eq!(args.leftover(), None);

        let mut args = Args::new("true false");
        assert_eq!(args.value().ok(), Some("true"));
        assert_eq!(args.leftover(), Some("false"));

        let mut args = Args::new("  /var/run/my broker.pid  ");
        assert_eq!(args.rest_of_line().ok(), Some("/var/run/my broker.pid"));
        assert!(matches!(
            Args::new("   ").rest_of_line(),
            Err(Problem::MissingValue)
        ));
        assert!(matches!(
            Args::new("# only a comment").value(),
            Err(Problem::MissingValue)
        ));
        assert_eq!(Args::new("# out 1").next_raw(), Some("#"));
    }

    #[test]
    fn integers_are_strict_and_saturate() {
        assert_eq!(integer("20").ok(), Some(20));
        assert_eq!(integer("-1").ok(), Some(-1));
        assert_eq!(integer("+7").ok(), Some(7));
        assert_eq!(integer("99999999999999999999999").ok(), Some(i64::MAX));
        for bad in ["", "-", "lots", "20abc", "1.5", "0x10", " 1"] {
            assert!(integer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("3600").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(duration("2h").ok(), Some(Duration::from_secs(7200)));
        assert_eq!(duration("14d").ok(), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(duration("1w").ok(), Some(Duration::from_secs(604_800)));
        assert_eq!(duration("6m").ok(), Some(Duration::from_secs(6 * 30 * 86_400)));
        assert_eq!(duration("1y").ok(), Some(Duration::from_secs(365 * 86_400)));
        for bad in [
            "",
            "0",
            "0d",
            "d",
            "2x",
            "-1d",
            "1.5d",
            "99999999999999999999y",
            "18446744073709551615y",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert!(matches!(bind_address("127.0.0.1"), Ok(BindAddress::Ip(_))));
        assert!(matches!(bind_address("::1"), Ok(BindAddress::Ip(_))));
        assert!(matches!(bind_address("[::1]"), Ok(BindAddress::Ip(_))));
        assert!(matches!(
            bind_address("mqtt.example.com"),
            Ok(BindAddress::Host(_))
        ));
        assert!(matches!(bind_address("mqtt_broker"), Ok(BindAddress::Host(_))));
        for bad in [
            "not@valid!",
            "a..b",
            "999.1.1.1",
            "[127.0.0.1]",
            "/tmp/sock",
            "",
            "-",
            "-a.b",
            "a-.b",
        ] {
            assert!(bind_address(bad).is_err(), "{bad}");
        }
    }
}
