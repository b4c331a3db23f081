//! What `wdyno local` takes from Foreman and `heroku local`: `.env` files,
//! a formation as `web=2,worker=1` or a bare process name, the port's
//! precedence, and `NO_COLOR`. Pure functions, tested here.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use anyhow::{Result, bail};

/// Parses a `.env` file as Foreman does: `KEY=value` lines; `'single'`
/// quotes keep the value as is, `"double"` quotes turn `\n` into a newline
/// and `\X` into `X`; blank lines and `#` comments are skipped; an
/// `export ` prefix is allowed (a shell can source the same file). `name`
/// names the file in errors.
pub fn parse_env(name: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = trimmed.split_once('=') else {
            bail!("{name} line {}: expected KEY=value, found {line:?}", i + 1);
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "{name} line {}: {key:?} is not a variable name (letters, digits and _)",
                i + 1
            );
        }
        let value = if let Some(v) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            v.to_owned()
        } else if let Some(v) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            unescape(v)
        } else {
            value.trim().to_owned()
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A formation as `heroku local` and Foreman take it: `web=2,worker=1`,
/// `web` (one web dyno and nothing else), `web,worker`, `all=2`. Types
/// not named get none, unless `all` is given. `types` are the Procfile's.
pub fn parse_formation(spec: &str, types: &[String]) -> Result<BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    let mut all = None;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (ty, n) = match part.split_once('=') {
            Some((ty, n)) => {
                let n = n.trim().parse().map_err(|_| {
                    anyhow::anyhow!("{part}: the count must be a whole number (like web=2)")
                })?;
                (ty.trim(), n)
            }
            None => (part, 1),
        };
        if ty == "all" {
            all = Some(n);
        } else if types.iter().any(|t| t == ty) && ty != "release" {
            out.insert(ty.to_owned(), n);
        } else {
            let runnable: Vec<&str> = types
                .iter()
                .map(String::as_str)
                .filter(|t| *t != "release")
                .collect();
            bail!(
                "{spec}: no process type {ty} in the Procfile (it has: {})",
                runnable.join(", ")
            );
        }
    }
    if let Some(n) = all {
        for t in types.iter().filter(|t| t.as_str() != "release") {
            out.entry(t.clone()).or_insert(n);
        }
    }
    Ok(out)
}

/// Whether a positional argument of `wdyno local` is a formation
/// (`web=2`, `web,worker`) rather than the app's directory: it is one if
/// it has `=` or `,`, or if no directory of that name exists.
pub fn is_formation(arg: &str, is_dir: bool) -> bool {
    arg.contains('=') || arg.contains(',') || !is_dir
}

/// The port, as Foreman picks it: `-p`, then `PORT` in the `.env`, then
/// `$PORT`, then 5000.
pub fn port(flag: Option<u16>, dotenv: Option<&str>, env: Option<&str>) -> Result<u16> {
    if let Some(p) = flag {
        return Ok(p);
    }
    for (from, v) in [(".env", dotenv), ("$PORT", env)] {
        if let Some(v) = v {
            return v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("PORT in {from} is {v:?}, not a port number"));
        }
    }
    Ok(5000)
}

/// Colour on a terminal, unless `NO_COLOR` is set to anything but empty
/// (no-color.org).
pub fn use_color(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_reads_as_foreman_does() {
        let text = "# a comment\n\nA=plain value \nB='single $X \\n'\nC=\"dq \\\"x\\\" line\\nnext \\\\\"\nexport D=exported\r\n  E = spaced\nF=a=b\nG=\n";
        let env = parse_env(".env", text).unwrap();
        let want: BTreeMap<String, String> = [
            ("A", "plain value"),
            ("B", "single $X \\n"),
            ("C", "dq \"x\" line\nnext \\"),
            ("D", "exported"),
            ("E", "spaced"),
            ("F", "a=b"),
            ("G", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, want);
        assert_eq!(
            parse_env(".env", "A=1\nnot a pair\n")
                .unwrap_err()
                .to_string(),
            ".env line 2: expected KEY=value, found \"not a pair\""
        );
        assert_eq!(
            parse_env("x.env", "A-B=1\n").unwrap_err().to_string(),
            "x.env line 1: \"A-B\" is not a variable name (letters, digits and _)"
        );
    }

    #[test]
    fn formations_read_as_heroku_local_does() {
        let types: Vec<String> = ["release", "web", "worker"].map(String::from).to_vec();
        let f = |s| parse_formation(s, &types).map(|m| m.into_iter().collect::<Vec<_>>());
        assert_eq!(
            f("web=2,worker=1").unwrap(),
            [("web".to_owned(), 2), ("worker".to_owned(), 1)]
        );
        assert_eq!(f("web").unwrap(), [("web".to_owned(), 1)]);
        assert_eq!(
            f("all=2,web=1").unwrap(),
            [("web".to_owned(), 1), ("worker".to_owned(), 2)]
        );
        assert_eq!(
            f("clock").unwrap_err().to_string(),
            "clock: no process type clock in the Procfile (it has: web, worker)"
        );
        assert_eq!(
            f("web=x").unwrap_err().to_string(),
            "web=x: the count must be a whole number (like web=2)"
        );
        assert!(is_formation("web=2", true));
        assert!(is_formation("web", false));
        assert!(!is_formation("examples/rust-web", true));
    }

    #[test]
    fn port_precedence_is_foremans() {
        assert_eq!(port(Some(7), Some("8"), Some("9")).unwrap(), 7);
        assert_eq!(port(None, Some("8"), Some("9")).unwrap(), 8);
        assert_eq!(port(None, None, Some("9")).unwrap(), 9);
        assert_eq!(port(None, None, None).unwrap(), 5000);
        assert_eq!(
            port(None, None, Some("x")).unwrap_err().to_string(),
            "PORT in $PORT is \"x\", not a port number"
        );
    }

    #[test]
    fn no_color_turns_colour_off() {
        assert!(use_color(true, None));
        assert!(use_color(true, Some(OsStr::new(""))));
        assert!(!use_color(true, Some(OsStr::new("1"))));
        assert!(!use_color(false, None));
    }
}
