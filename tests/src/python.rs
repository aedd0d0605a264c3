//! Running real CPython from tests: compatibility is checked against the
//! program itself, never against our memory of it.

use std::io::Write;
use std::process::{Command, Stdio};

/// A CPython interpreter the tests can run.
#[derive(Debug, Clone)]
pub struct Python {
    /// `None` for the `python3` on the path; else a pyenv version such as
    /// `2.7.18`, run as `pyenv exec python` with `PYENV_VERSION` set.
    pub version: Option<String>,
}

impl Python {
    /// The `python3` on the path, or `None` (with the reason printed) when it
    /// cannot be run.
    pub fn default_or_skip(case: &str) -> Option<Python> {
        let p = Python { version: None };
        match p.run("import sys; print(sys.version_info[0])", &[]) {
            Ok(out) if out.trim() == "3" => Some(p),
            Ok(out) => {
                crate::skip(case, "python3", &format!("python3 reports major version {out:?}"));
                None
            }
            Err(e) => {
                crate::skip(case, "python3", &format!("python3 cannot be run: {e}"));
                None
            }
        }
    }

    /// The pyenv interpreter whose version starts with `prefix` (`"2.7"`,
    /// `"3.13"`), or `None` with the reason printed.
    pub fn pyenv_or_skip(prefix: &str, case: &str) -> Option<Python> {
        let listed = Command::new("pyenv").args(["versions", "--bare"]).output();
        let Ok(listed) = listed else {
            crate::skip(case, prefix, "pyenv is not installed");
            return None;
        };
        let text = String::from_utf8_lossy(&listed.stdout);
        let found = text
            .lines()
            .map(str::trim)
            .find(|v| v.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')));
        match found {
            Some(v) => Some(Python { version: Some(v.to_owned()) }),
            None => {
                crate::skip(case, prefix, "pyenv has no such CPython");
                None
            }
        }
    }

    /// A short name for messages.
    pub fn label(&self) -> String {
        self.version.clone().unwrap_or_else(|| "python3".into())
    }

    fn command(&self) -> Command {
        match &self.version {
            None => Command::new("python3"),
            Some(v) => {
                let mut c = Command::new("pyenv");
                c.args(["exec", "python"]).env("PYENV_VERSION", v);
                c
            }
        }
    }

    /// Runs `script` with `args` (as `sys.argv[1:]`); returns stdout, or
    /// stderr as the error when the script fails.
    ///
    /// # Errors
    /// The interpreter's stderr, or why it could not start.
    pub fn run(&self, script: &str, args: &[&str]) -> Result<String, String> {
        let mut child = self
            .command()
            .arg("-")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.label()))?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot write the script: {e}"))?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} failed ({}):\n{}{}",
                self.label(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}
