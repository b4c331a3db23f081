//! When an app's web dynos sleep (`wdyno apps:update --sleep-after 30m`):
//! a pure type the ledger keeps and the manager's sleeper follows.
//!
//! Heroku's eco dynos sleep after 30 minutes without web traffic and wake
//! on the next request; wdyno makes it a per-app setting, `off` unless
//! set. Values are a whole number of seconds, minutes or hours (`90s`,
//! `30m`, `1h`), so a test can say `1s`; they print back the same way,
//! in the largest unit that divides them (`120s` is `2m`).

use std::fmt;
use std::time::Duration;

/// After how long without a request an app's web dynos are stopped
/// (`None`: never, Heroku's default for every dyno type but eco).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SleepAfter(Option<Duration>);

/// A value that is neither a duration nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SleepAfterError {
    #[error("{0:?} is not a duration; use 30m, 90s, 1h or off")]
    NotADuration(String),
    #[error("{0:?} is no time at all; use at least 1s, or off")]
    Zero(String),
}

/// The longest setting: a year. Past it "sleep after" means "never",
/// which is `off`; the bound also keeps deadlines far from overflow.
pub const MAX_SLEEP_AFTER: Duration = Duration::from_secs(365 * 24 * 3600);

impl SleepAfter {
    /// Never sleeps.
    pub const OFF: SleepAfter = SleepAfter(None);

    /// `off`, or a positive whole number followed by `s`, `m` or `h`.
    pub fn parse(s: &str) -> Result<SleepAfter, SleepAfterError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(SleepAfter::OFF);
        }
        let bad = || SleepAfterError::NotADuration(s.to_owned());
        let unit = match t.as_bytes().last() {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            _ => return Err(bad()),
        };
        let digits = &t[..t.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let secs = n.checked_mul(unit).ok_or_else(bad)?;
        if secs == 0 {
            return Err(SleepAfterError::Zero(s.to_owned()));
        }
        if secs > MAX_SLEEP_AFTER.as_secs() {
            return Err(bad());
        }
        Ok(SleepAfter(Some(Duration::from_secs(secs))))
    }

    /// The idle time after which the app sleeps; `None` when `off`.
    pub fn duration(self) -> Option<Duration> {
        self.0
    }

    pub fn is_off(self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for SleepAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(d) = self.0 else {
            return f.write_str("off");
        };
        let s = d.as_secs();
        if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl serde::Serialize for SleepAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SleepAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SleepAfter::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<u64> {
        SleepAfter::parse(s)
            .unwrap()
            .duration()
            .map(|d| d.as_secs())
    }

    #[test]
    fn durations_in_seconds_minutes_and_hours() {
        assert_eq!(secs("1s"), Some(1));
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("30m"), Some(1800));
        assert_eq!(secs("1h"), Some(3600));
        assert_eq!(secs(" 2h "), Some(7200));
    }

    #[test]
    fn off_is_never() {
        assert_eq!(SleepAfter::parse("off"), Ok(SleepAfter::OFF));
        assert_eq!(SleepAfter::parse("OFF"), Ok(SleepAfter::OFF));
        assert!(SleepAfter::default().is_off());
        assert_eq!(SleepAfter::OFF.to_string(), "off");
    }

    #[test]
    fn printed_in_the_largest_unit_that_divides() {
        for (given, shown) in [
            ("90s", "90s"),
            ("120s", "2m"),
            ("30m", "30m"),
            ("60m", "1h"),
            ("3600s", "1h"),
            ("1s", "1s"),
        ] {
            assert_eq!(SleepAfter::parse(given).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn bad_values_say_what_to_write() {
        for bad in [
            "abc", "", "30", "m", "-5m", "1.5h", "30 m", "10d", "5ms", "+5s",
        ] {
            let e = SleepAfter::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad:?} is not a duration; use 30m, 90s, 1h or off"),
                "{bad}"
            );
        }
        assert_eq!(
            SleepAfter::parse("abc").unwrap_err().to_string(),
            "\"abc\" is not a duration; use 30m, 90s, 1h or off"
        );
        assert_eq!(
            SleepAfter::parse("0m").unwrap_err().to_string(),
            "\"0m\" is no time at all; use at least 1s, or off"
        );
        // Overflow and over a year: not a sleep, an error.
        assert!(SleepAfter::parse("99999999999999999999h").is_err());
        assert!(SleepAfter::parse("9000h").is_err());
    }

    #[test]
    fn serde_round_trips_as_the_string() {
        let v = SleepAfter::parse("30m").unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"30m\"");
        assert_eq!(serde_json::from_str::<SleepAfter>(&json).unwrap(), v);
        assert_eq!(
            serde_json::from_str::<SleepAfter>("\"off\"").unwrap(),
            SleepAfter::OFF
        );
        assert!(serde_json::from_str::<SleepAfter>("\"abc\"").is_err());
    }
}
