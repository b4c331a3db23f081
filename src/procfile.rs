//! The Procfile: which process types an app has and what each runs.
//!
//! `name: command args…`, one per line; blank lines and `#` comments are
//! skipped. The command's first word names a component in the slug
//! (`bin/web` → `bin/web.wasm`); the rest are its arguments, with `$VAR` and
//! `${VAR}` expanded from the dyno's env when it starts. Every error names
//! the line and column and says what was expected.

use std::collections::BTreeMap;
use std::fmt;

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

/// One process type's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program word as written (`bin/web`).
    pub program: String,
    pub args: Vec<String>,
    /// The whole command as written, for logs and `ps`.
    pub line: String,
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

impl Procfile {
    pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            let syntax = |column: usize, what: String| ProcfileError::Syntax { line, column, what };
            let Some(colon) = trimmed.find(':') else {
                return Err(syntax(
                    indent + 1,
                    format!(
                        "expected `name: command`, found {:?} (no ':' after the process type)",
                        trimmed.trim_end()
                    ),
                ));
            };
            let name = trimmed[..colon].trim_end();
            let process = ProcessType::parse(name).map_err(|_| {
                syntax(
                    indent + 1,
                    format!(
                        "{name:?} is not a valid process type name: use 1 to 63 letters, \
                         digits, '-' and '_'"
                    ),
                )
            })?;
            let rest = &trimmed[colon + 1..];
            let command_text = rest.trim();
            let column = indent + colon + 2 + (rest.len() - rest.trim_start().len());
            if command_text.is_empty() {
                return Err(syntax(
                    indent + colon + 2,
                    format!("{process}: expected a command after ':', found nothing"),
                ));
            }
            if let Some(first) = entries.iter().find(|e| e.process == process) {
                return Err(syntax(
                    indent + 1,
                    format!(
                        "process type {process} is defined twice (first on line {}); \
                         keep one",
                        first.line
                    ),
                ));
            }
            let words = split_words(command_text)
                .map_err(|(offset, what)| syntax(column + offset, format!("{process}: {what}")))?;
            let (program, args) = words.split_first().expect("a non-empty command has a word");
            entries.push(Entry {
                process,
                command: Command {
                    program: program.clone(),
                    args: args.to_vec(),
                    line: command_text.to_owned(),
                },
                line,
                column,
            });
        }
        Ok(Procfile { entries })
    }

    /// Builds a Procfile from a buildpack's `default_process_types`.
    pub fn from_defaults(defaults: &BTreeMap<String, String>) -> Result<Procfile, ProcfileError> {
        let text: String = defaults
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        Procfile::parse(&text)
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
    /// whether `bin/x.wasm` exists and is a dyno (`Err(why)` if not); `built`
    /// lists what the slug holds, for the message.
    pub fn check_components(
        &self,
        built: &[String],
        check: impl Fn(&str) -> Option<Result<(), String>>,
    ) -> Result<(), ProcfileError> {
        for e in &self.entries {
            let component = e.command.component_path();
            match check(&component) {
                Some(Ok(())) => {}
                Some(Err(why)) => {
                    return Err(ProcfileError::BadComponent {
                        line: e.line,
                        column: e.column,
                        process: e.process.to_string(),
                        component,
                        why,
                    });
                }
                None => {
                    return Err(ProcfileError::UnknownComponent {
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
                    });
                }
            }
        }
        Ok(())
    }
}

impl Command {
    /// Parses a one-off command line (`wdyno run -- bin/task a b`).
    pub fn parse(text: &str) -> Result<Command, String> {
        let words = split_words(text.trim()).map_err(|(_, what)| what)?;
        let (program, args) = words
            .split_first()
            .ok_or_else(|| "expected a command".to_owned())?;
        Ok(Command {
            program: program.clone(),
            args: args.to_vec(),
            line: text.trim().to_owned(),
        })
    }

    /// The slug path of the component this command runs.
    pub fn component_path(&self) -> String {
        let p = self
            .program
            .trim_start_matches("./")
            .trim_start_matches("/app/");
        if p.ends_with(".wasm") {
            p.to_owned()
        } else {
            format!("{p}.wasm")
        }
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

/// Expands `$VAR` and `${VAR}` in one argument.
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
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Procfile::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_types_commands_and_comments() {
        let p = Procfile::parse(
            "# processes\n\nweb: bin/web --port $PORT\n  worker:bin/worker 'a b' \"c\"\nrelease: bin/migrate\n",
        )
        .unwrap();
        let web = p.get("web").unwrap();
        assert_eq!(web.program, "bin/web");
        assert_eq!(web.args, ["--port", "$PORT"]);
        assert_eq!(web.line, "bin/web --port $PORT");
        assert_eq!(web.component_path(), "bin/web.wasm");
        assert_eq!(p.get("worker").unwrap().args, ["a b", "c"]);
        let order: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(order, ["web", "worker", "release"]);
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            err("web: bin/web\nworker bin/worker\n"),
            "Procfile line 2, column 1: expected `name: command`, found \"worker bin/worker\" \
             (no ':' after the process type)"
        );
        assert_eq!(
            err("web server: bin/web"),
            "Procfile line 1, column 1: \"web server\" is not a valid process type name: use 1 \
             to 63 letters, digits, '-' and '_'"
        );
        assert_eq!(
            err("web: bin/a\n# c\nweb: bin/b"),
            "Procfile line 3, column 1: process type web is defined twice (first on line 1); keep one"
        );
        assert_eq!(
            err("web:   "),
            "Procfile line 1, column 5: web: expected a command after ':', found nothing"
        );
        assert_eq!(
            err("web: bin/web 'open"),
            "Procfile line 1, column 14: web: the quote ' opened here is never closed"
        );
    }

    #[test]
    fn unknown_component_names_what_was_built() {
        let p = Procfile::parse("web: bin/web\nworker: bin/server").unwrap();
        let built = vec!["bin/web.wasm".to_owned(), "bin/app.wasm".to_owned()];
        let e = p
            .check_components(&built, |c| (c == "bin/web.wasm").then_some(Ok(())))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Procfile line 2, column 9: worker: bin/server — no component bin/server.wasm in \
             the slug (built: bin/web.wasm, bin/app.wasm)"
        );
    }

    #[test]
    fn expands_env_in_args() {
        let env = BTreeMap::from([
            ("PORT".to_owned(), "5001".to_owned()),
            ("NAME".to_owned(), "x".to_owned()),
        ]);
        let c = Command::parse("bin/web $PORT ${NAME}-y $MISSING $ a$").unwrap();
        assert_eq!(c.argv(&env), ["bin/web", "5001", "x-y", "", "$", "a$"]);
    }
}
