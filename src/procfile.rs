//! The Procfile: which process types an app has and what each runs.
//!
//! `name: command args…`, one per line; blank lines and `#` comments are
//! skipped. The command's first word names a component in the slug
//! (`bin/web` → `bin/web.wasm`); the rest are its arguments, with `$VAR` and
//! `${VAR}` expanded from the dyno's env when it starts. Every error names
//! the line and column (1-based, in characters) and says what was expected.
//!
//! The Procfile comes from the app's source, so it is untrusted: a program
//! word may only name a path inside the slug (`bin/web`, `./bin/web` or
//! `/app/bin/web`); `..`, other absolute paths and the like are refused when
//! parsing, so [`Command::component_path`] is always safe to join onto the
//! slug's directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path};

use crate::names::ProcessType;

/// What is wrong with a Procfile, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcfileError {
    #[error("Procfile line {line}, column {column}: {what}")]
    Syntax {
        line: usize,
        column: usize,
        what: String,
    },
    #[error(
        "Procfile line {line}, column {column}: {process}: {command} — no component {component} \
         in the slug (built: {built})"
    )]
    UnknownComponent {
        line: usize,
        column: usize,
        process: String,
        command: String,
        component: String,
        built: String,
    },
    #[error("Procfile line {line}, column {column}: {process}: {component} is {why}")]
    BadComponent {
        line: usize,
        column: usize,
        process: String,
        component: String,
        why: String,
    },
}

/// One process type's command. Only [`Procfile::parse`] and
/// [`Command::parse`] make one, so its component path is known to be safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program word as written (`bin/web`).
    pub program: String,
    pub args: Vec<String>,
    /// The whole command as written, for logs and `ps`.
    pub line: String,
    /// The slug path of the component: relative, no `..`, ends `.wasm`.
    component: String,
}

/// A parsed Procfile, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Procfile {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    process: ProcessType,
    command: Command,
    line: usize,
    /// Column where the command starts.
    column: usize,
}

/// 1-based character column of byte offset `at` in `text`.
fn column_of(text: &str, at: usize) -> usize {
    text[..at].chars().count() + 1
}

impl Procfile {
    pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let syntax = |at: usize, what: String| ProcfileError::Syntax {
                line,
                column: column_of(raw, at),
                what,
            };
            let indent = raw.len() - trimmed.len();
            let Some(colon) = trimmed.find(':') else {
                return Err(syntax(
                    indent,
                    format!(
                        "expected `name: command`, found {:?} (no ':' after the process type)",
                        trimmed.trim_end()
                    ),
                ));
            };
            let name = trimmed[..colon].trim_end();
            let process = ProcessType::parse(name).map_err(|_| {
                syntax(
                    indent,
                    format!(
                        "{name:?} is not a valid process type name: use 1 to 63 letters, \
                         digits, '-' and '_'"
                    ),
                )
            })?;
            if let Some(first) = entries.iter().find(|e| e.process == process) {
                return Err(syntax(
                    indent,
                    format!(
                        "process type {process} is defined twice (first on line {}); keep one",
                        first.line
                    ),
                ));
            }
            let after_colon = indent + colon + 1;
            let entry = parse_entry(process, raw, after_colon, line)?;
            entries.push(entry);
        }
        Ok(Procfile { entries })
    }

    /// Builds a Procfile from process type → command line pairs: a
    /// buildpack's `default_process_types`, or a release's process types as
    /// the ledger keeps them. Line numbers in errors count the pairs.
    pub fn from_defaults(defaults: &BTreeMap<String, String>) -> Result<Procfile, ProcfileError> {
        let mut entries = Vec::with_capacity(defaults.len());
        for (i, (name, command)) in defaults.iter().enumerate() {
            let line = i + 1;
            let process = ProcessType::parse(name).map_err(|_| ProcfileError::Syntax {
                line,
                column: 1,
                what: format!(
                    "{name:?} is not a valid process type name: use 1 to 63 letters, digits, \
                     '-' and '_'"
                ),
            })?;
            if command.contains(['\n', '\r']) {
                return Err(ProcfileError::Syntax {
                    line,
                    column: 1,
                    what: format!("{process}: a command is one line, found a line break"),
                });
            }
            let raw = format!("{process}: {command}");
            entries.push(parse_entry(process, &raw, name.len() + 1, line)?);
        }
        Ok(Procfile { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, process: &str) -> Option<&Command> {
        self.entries
            .iter()
            .find(|e| e.process.as_str() == process)
            .map(|e| &e.command)
    }

    /// Process types and their commands, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&ProcessType, &Command)> {
        self.entries.iter().map(|e| (&e.process, &e.command))
    }

    /// Process type → command line, as the ledger records it.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(p, c)| (p.to_string(), c.line.clone()))
            .collect()
    }

    /// Checks every command's component at release time: `check` says
    /// whether `bin/x.wasm` exists (`None` if not) and is a dyno (`Err(why)`
    /// if not); `built` lists what the slug holds, for the message.
    pub fn check_components(
        &self,
        built: &[String],
        mut check: impl FnMut(&str) -> Option<Result<(), String>>,
    ) -> Result<(), ProcfileError> {
        for e in &self.entries {
            let component = e.command.component_path();
            let fail = match check(&component) {
                Some(Ok(())) => continue,
                Some(Err(why)) => ProcfileError::BadComponent {
                    line: e.line,
                    column: e.column,
                    process: e.process.to_string(),
                    component,
                    why,
                },
                None => ProcfileError::UnknownComponent {
                    line: e.line,
                    column: e.column,
                    process: e.process.to_string(),
                    command: e.command.program.clone(),
                    component,
                    built: if built.is_empty() {
                        "nothing".into()
                    } else {
                        built.join(", ")
                    },
                },
            };
            return Err(fail);
        }
        Ok(())
    }
}

/// Parses the command of one line: `raw[after_colon..]` is what follows
/// the `:` (columns are reported against `raw`).
fn parse_entry(
    process: ProcessType,
    raw: &str,
    after_colon: usize,
    line: usize,
) -> Result<Entry, ProcfileError> {
    let rest = &raw[after_colon..];
    let start = after_colon + (rest.len() - rest.trim_start().len());
    let command_text = rest.trim();
    let syntax = |at: usize, what: String| ProcfileError::Syntax {
        line,
        column: column_of(raw, at),
        what: format!("{process}: {what}"),
    };
    if command_text.is_empty() {
        return Err(syntax(
            after_colon,
            "expected a command after ':', found nothing".into(),
        ));
    }
    let command =
        Command::from_text(command_text).map_err(|(at, what)| syntax(start + at, what))?;
    Ok(Entry {
        process,
        command,
        line,
        column: column_of(raw, start),
    })
}

impl Command {
    /// Parses a one-off command line (`wdyno run -- bin/task a b`).
    pub fn parse(text: &str) -> Result<Command, String> {
        Command::from_text(text.trim()).map_err(|(_, what)| what)
    }

    /// Errors carry the byte offset in `text` of the problem.
    fn from_text(text: &str) -> Result<Command, (usize, String)> {
        let words = split_words(text)?;
        let (program, args) = words
            .split_first()
            .ok_or_else(|| (0, "expected a command".to_owned()))?;
        let component = component_of(program).ok_or_else(|| {
            (
                0,
                format!(
                    "{program:?} does not name a component in the slug: use a path inside the \
                     app, like bin/web"
                ),
            )
        })?;
        Ok(Command {
            program: program.clone(),
            args: args.to_vec(),
            line: text.to_owned(),
            component,
        })
    }

    /// The slug path of the component this command runs (`bin/web` →
    /// `bin/web.wasm`): relative, without `..`, safe to join onto the
    /// slug's directory.
    pub fn component_path(&self) -> String {
        self.component.clone()
    }

    /// argv for the dyno: the program, then the args with `$VAR` and
    /// `${VAR}` expanded from `env` (unknown variables expand to nothing).
    pub fn argv(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| expand(a, env)))
            .collect()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// The slug path a program word names, or `None` if it points outside the
/// slug. `./bin/web` and `/app/bin/web` (the dyno's view) mean `bin/web`.
fn component_of(program: &str) -> Option<String> {
    let inside = program.strip_prefix("/app/").unwrap_or(program);
    let mut parts = Vec::new();
    for c in Path::new(inside).components() {
        match c {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let path = parts.join("/");
    if path.is_empty() {
        return None;
    }
    Some(if path.ends_with(".wasm") {
        path
    } else {
        format!("{path}.wasm")
    })
}

/// Splits a command into words: whitespace separates, single and double
/// quotes group. Errors carry the byte offset of the problem.
fn split_words(text: &str) -> Result<Vec<String>, (usize, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<(char, usize)> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some((q, _)) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some((c, i));
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some((q, at)) = quote {
        return Err((at, format!("the quote {q} opened here is never closed")));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Expands `$VAR` and `${VAR}` in one argument; unknown variables expand
/// to nothing, a `$` not followed by a name stays as it is.
pub fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(env.get(name).map(String::as_str).unwrap_or(""));
            rest = &after[consumed..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "procfile_tests.rs"]
mod tests;
