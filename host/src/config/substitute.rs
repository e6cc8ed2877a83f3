//! `${NAME}` references in configuration strings, and the env files that
//! may define them.

use std::collections::BTreeMap;
use std::path::Path;

/// Where `${NAME}` is looked up first; the env files come after.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Lookup for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// Variables read from env files (`NAME=value` lines), first file first.
#[derive(Default)]
pub struct EnvFiles {
    values: BTreeMap<String, (String, String)>,
}

impl EnvFiles {
    /// Reads each existing file; a missing file is skipped, since env files
    /// are written later by `make plugins` and `keyhost infra up`.
    pub fn read(paths: &[std::path::PathBuf]) -> Result<Self, (std::path::PathBuf, String)> {
        let mut files = Self::default();
        for path in paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err((path.clone(), e.to_string())),
            };
            for (name, value) in parse_env_file(&text) {
                files
                    .values
                    .entry(name)
                    .or_insert_with(|| (value, path.display().to_string()));
            }
        }
        Ok(files)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }
}

/// `NAME=value` lines; `#` comments, blank lines and a leading `export ` are
/// allowed, and one pair of surrounding quotes is removed.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// Replaces every `${NAME}` (or `${NAME:-default}`) in `value`. Errors say
/// which variable is missing.
pub fn expand(value: &str, env: &dyn Lookup, files: &EnvFiles) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{value:?} has an unclosed ${{"))?;
        let (name, default) = match after[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&after[..end], None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("${{{name}}} is not a variable name"));
        }
        let resolved = env
            .get(name)
            .or_else(|| files.get(name).map(str::to_owned))
            .or_else(|| default.map(str::to_owned))
            .ok_or_else(|| {
                format!("${{{name}}} is not set in the environment or in any env file")
            })?;
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes or replaces `NAME=value` in the env file at `path`, keeping its
/// other lines; the file is replaced atomically.
pub fn set_in_env_file(path: &Path, name: &str, value: &str) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for line in existing.lines() {
        let bare = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        if bare.split_once('=').is_some_and(|(n, _)| n.trim() == name) {
            if !replaced {
                lines.push(format!("{name}={value}"));
                replaced = true;
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    if !replaced {
        lines.push(format!("{name}={value}"));
    }
    let tmp = path.with_extension("tmp-keyhost");
    std::fs::write(&tmp, lines.join("\n") + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_the_environment_before_env_files() {
        let env = BTreeMap::from([("A".to_string(), "from-env".to_string())]);
        let mut files = EnvFiles::default();
        files
            .values
            .insert("A".into(), ("from-file".into(), "f".into()));
        files.values.insert("B".into(), ("b".into(), "f".into()));
        assert_eq!(expand("${A}/${B}", &env, &files).unwrap(), "from-env/b");
    }

    #[test]
    fn a_default_applies_only_when_the_variable_is_unset() {
        let env = BTreeMap::from([("SET".to_string(), "v".to_string())]);
        let files = EnvFiles::default();
        assert_eq!(
            expand("${SET:-d}|${UNSET:-http://127.0.0.1:4566}", &env, &files).unwrap(),
            "v|http://127.0.0.1:4566"
        );
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let env = BTreeMap::new();
        let err = expand("x${KMS_KEY_ID}", &env, &EnvFiles::default()).unwrap_err();
        assert!(err.contains("${KMS_KEY_ID}"), "{err}");
    }

    #[test]
    fn env_files_accept_comments_exports_and_quotes() {
        let parsed = parse_env_file("# c\nexport A=1\nB=\"two\"\n\nC='3'\nnot a pair\n");
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "3".into())
            ]
        );
    }

    #[test]
    fn setting_a_variable_keeps_the_other_lines() {
        let dir = std::env::temp_dir().join(format!("keyhost-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env.local");
        std::fs::write(&path, "# mine\nOTHER=1\nKMS_KEY_ID=old\n").unwrap();
        set_in_env_file(&path, "KMS_KEY_ID", "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\nOTHER=1\nKMS_KEY_ID=new\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
