//! Parsed names: once a value has one of these types it is valid, and the
//! rest of the code never checks it again.

use std::fmt;

/// A rule a name broke, said so a user knows what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {rule}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }
    };
}

name_type!(
    /// An app's name: `[a-z][a-z0-9-]{1,29}`.
    AppName
);
name_type!(
    /// A Procfile process type: `[A-Za-z0-9_-]{1,63}`.
    ProcessType
);
name_type!(
    /// A config var key: `[A-Za-z_][A-Za-z0-9_]*`, not one the platform sets.
    ConfigKey
);

impl AppName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |rule| NameError {
            what: "app name",
            value: s.to_owned(),
            rule,
        };
        let mut chars = s.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
            return Err(err("start with a lowercase letter"));
        }
        if !(2..=30).contains(&s.len()) {
            return Err(err("use 2 to 30 characters"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(err("use lowercase letters, digits and '-'"));
        }
        Ok(AppName(s.to_owned()))
    }

    /// A made-up name, as Heroku gives an app created without one:
    /// `adjective-noun-12345`.
    pub fn generate() -> Self {
        use rand::RngExt;
        const ADJECTIVES: &[&str] = &[
            "amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hidden", "icy",
            "jolly", "keen", "lively", "mellow", "nimble", "polar", "quiet", "rapid", "sunny",
            "tidy", "vast", "warm", "young", "zesty", "floating", "shining", "stormy",
        ];
        const NOUNS: &[&str] = &[
            "anchor", "brook", "canyon", "dawn", "ember", "forest", "garden", "harbor", "island",
            "lake", "meadow", "nebula", "ocean", "peak", "river", "sierra", "thicket", "valley",
            "willow", "badlands", "citadel", "fjord", "glacier", "lagoon", "mesa", "tundra",
        ];
        let mut rng = rand::rng();
        let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
        let noun = NOUNS[rng.random_range(0..NOUNS.len())];
        let n: u32 = rng.random_range(10_000..100_000);
        AppName(format!("{adjective}-{noun}-{n}"))
    }
}

impl ProcessType {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=63).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(ProcessType(s.to_owned()))
        } else {
            Err(NameError {
                what: "process type",
                value: s.to_owned(),
                rule: "use 1 to 63 letters, digits, '-' and '_'",
            })
        }
    }

    pub fn is_web(&self) -> bool {
        self.0 == "web"
    }
}

/// Keys the platform sets itself: config vars may not shadow them.
const RESERVED_KEYS: &[&str] = &["PORT", "DYNO"];

impl ConfigKey {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |rule| NameError {
            what: "config var",
            value: s.to_owned(),
            rule,
        };
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(
                "use letters, digits and '_', not starting with a digit",
            ));
        }
        if s.starts_with("WDYNO_") || RESERVED_KEYS.contains(&s) {
            return Err(err("PORT, DYNO and WDYNO_* are set by the platform"));
        }
        Ok(ConfigKey(s.to_owned()))
    }
}

/// A dyno's name: its process type and number, `web.1`, `run.4711`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DynoName {
    pub process: ProcessType,
    pub number: u32,
}

impl DynoName {
    pub fn new(process: ProcessType, number: u32) -> Self {
        DynoName { process, number }
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = || NameError {
            what: "dyno name",
            value: s.to_owned(),
            rule: "use TYPE.NUMBER, like web.1",
        };
        let (ty, n) = s.rsplit_once('.').ok_or_else(err)?;
        // Digits only, no sign or leading zero: one spelling per dyno.
        if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let number: u32 = n.parse().map_err(|_| err())?;
        Ok(DynoName {
            process: ProcessType::parse(ty).map_err(|_| err())?,
            number,
        })
    }
}

impl fmt::Display for DynoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.process, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert!(AppName::parse("hello-2").is_ok());
        for bad in ["", "a", "Hello", "2go", "has_underscore", &"a".repeat(31)] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AppName::parse("Hello").unwrap_err().to_string(),
            "app name \"Hello\" is not valid: start with a lowercase letter"
        );
    }

    #[test]
    fn process_types_and_dynos() {
        assert!(ProcessType::parse("web").unwrap().is_web());
        assert!(ProcessType::parse("clock_2-b").is_ok());
        assert!(ProcessType::parse("web server").is_err());
        let d = DynoName::parse("worker.12").unwrap();
        assert_eq!((d.process.as_str(), d.number), ("worker", 12));
        assert_eq!(d.to_string(), "worker.12");
        assert_eq!(DynoName::parse("run.4711").unwrap().number, 4711);
        for bad in [
            "web",
            "web.0",
            "web.01",
            ".1",
            "web.x",
            "web.+1",
            "web.-1",
            "web.",
            "web.1.2",
            "web.99999999999",
        ] {
            assert!(DynoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys() {
        assert!(ConfigKey::parse("DATABASE_URL").is_ok());
        assert!(ConfigKey::parse("_x1").is_ok());
        for bad in ["1X", "A-B", "", "PORT", "DYNO", "WDYNO_APP"] {
            assert!(ConfigKey::parse(bad).is_err(), "{bad}");
        }
    }
}
