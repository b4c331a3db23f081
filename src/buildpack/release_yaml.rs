//! The part of YAML `bin/release` prints that wdyno reads:
//! `default_process_types` as a map of plain or quoted strings.

use std::collections::BTreeMap;

pub fn default_process_types(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') || line == "---" {
            continue;
        }
        if line.starts_with("--- ") {
            // `--- {}`: an empty document.
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if !indented {
            inside = line.trim() == "default_process_types:";
            if !inside && !line.contains(':') {
                return Err(format!(
                    "line {}: expected `key: value`, found {line:?}",
                    i + 1
                ));
            }
            continue;
        }
        if inside {
            let (k, v) = line.trim().split_once(':').ok_or_else(|| {
                format!("line {}: expected `type: command`, found {line:?}", i + 1)
            })?;
            out.insert(k.trim().to_owned(), unquote(v.trim()).to_owned());
        }
    }
    Ok(out)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_default_process_types() {
        let t = "---\naddons: []\ndefault_process_types:\n  web: bin/web $PORT\n  worker: \"bin/w -v\"\nconfig_vars:\n  X: y\n";
        let m = default_process_types(t).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["web"], "bin/web $PORT");
        assert_eq!(m["worker"], "bin/w -v");
        assert!(default_process_types("--- {}\n").unwrap().is_empty());
        assert!(default_process_types("nonsense\n").is_err());
    }
}
