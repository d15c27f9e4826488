//! Calendar time in UTC without a time-zone database: a moment broken down into year, month,
//! day and time of day, `strftime` conversions over it, and RFC 3339 stamps. Shared by
//! `midge sub -F` (its `@` fields) and the broker's log lines (`log_timestamp_format`, the
//! `time` of `log_format json`).
//!
//! Mosquitto formats these in the local time zone; Midge uses UTC, which is what a service
//! under systemd has unless configured otherwise, and what log shippers expect.

use std::time::{SystemTime, UNIX_EPOCH};

/// A moment, broken down in UTC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) weekday: u32,
    pub(crate) yday: u32,
}

impl Now {
    /// The current time.
    pub(crate) fn get() -> Self {
        Self::at(SystemTime::now())
    }

    /// `time`, broken down.
    pub(crate) fn at(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = BEFORE[(month - 1) as usize] + day - 1 + u32::from(leap && month > 2);
        Self {
            secs,
            nanos: since.subsec_nanos(),
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }

    /// One `strftime` conversion; unknown ones print nothing.
    pub(crate) fn strftime(&self, conversion: u8) -> String {
        const DAYS: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let day_name = DAYS[self.weekday as usize % 7];
        let month_name = MONTHS[(self.month as usize + 11) % 12];
        let hour12 = if self.hour.is_multiple_of(12) {
            12
        } else {
            self.hour % 12
        };
        match conversion {
            b'a' => day_name[..3].to_owned(),
            b'A' => day_name.to_owned(),
            b'b' | b'h' => month_name[..3].to_owned(),
            b'B' => month_name.to_owned(),
            b'C' => format!("{:02}", self.year / 100),
            b'd' => format!("{:02}", self.day),
            b'D' => format!("{:02}/{:02}/{:02}", self.month, self.day, self.year % 100),
            b'e' => format!("{:2}", self.day),
            b'F' => format!("{}-{:02}-{:02}", self.year, self.month, self.day),
            b'H' => format!("{:02}", self.hour),
            b'I' => format!("{hour12:02}"),
            b'j' => format!("{:03}", self.yday + 1),
            b'k' => format!("{:2}", self.hour),
            b'l' => format!("{hour12:2}"),
            b'm' => format!("{:02}", self.month),
            b'M' => format!("{:02}", self.minute),
            b'n' => "\n".into(),
            b'p' => if self.hour < 12 { "AM" } else { "PM" }.into(),
            b'r' => format!(
                "{hour12:02}:{:02}:{:02} {}",
                self.minute,
                self.second,
                if self.hour < 12 { "AM" } else { "PM" }
            ),
            b'R' => format!("{:02}:{:02}", self.hour, self.minute),
            b's' => self.secs.to_string(),
            b'S' => format!("{:02}", self.second),
            b't' => "\t".into(),
            b'T' => format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second),
            b'u' => (if self.weekday == 0 { 7 } else { self.weekday }).to_string(),
            b'w' => self.weekday.to_string(),
            b'y' => format!("{:02}", self.year % 100),
            b'Y' => self.year.to_string(),
            b'z' => "+0000".into(),
            b'Z' => "UTC".into(),
            b'%' => "%".into(),
            _ => String::new(),
        }
    }

    /// `format` with each `%X` conversion replaced, as strftime(3) does it; unknown conversions
    /// print nothing.
    pub(crate) fn format(&self, format: &str) -> String {
        let mut out = String::with_capacity(format.len() + 16);
        let mut rest = format.chars();
        while let Some(c) = rest.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match rest.next() {
                Some(conversion) if conversion.is_ascii() => {
                    out.push_str(&self.strftime(conversion as u8));
                }
                Some(_) | None => {}
            }
        }
        out
    }

    /// RFC 3339 in UTC with microseconds: `2026-05-06T21:48:00.123456Z`.
    pub(crate) fn rfc3339(&self) -> String {
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_a_known_moment() {
        // 2024-02-29 13:05:09.000250 UTC, a Thursday, day 60 of a leap year.
        let moment = Now::at(UNIX_EPOCH + Duration::new(1_709_211_909, 250_000));
        assert_eq!(moment.rfc3339(), "2024-02-29T13:05:09.000250Z");
        assert_eq!(moment.format("%Y-%m-%dT%H:%M:%S"), "2024-02-29T13:05:09");
        assert_eq!(
            moment.format("%a %b %e %j %s 100%% %q"),
            "Thu Feb 29 060 1709211909 100% "
        );
        assert_eq!(moment.format("trailing %"), "trailing ");
    }
}
