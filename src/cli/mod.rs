//! Subcommand implementations. Only this package (and the tests) touch the file system.

use std::fmt;

pub mod bench;
pub mod compile;
pub mod conformance;
pub mod inspect;
pub mod isa;
pub mod model;
pub mod run;

/// An error reported to the user: a stable code (`E` + 4 digits), a message naming what went
/// wrong, and optionally what to do about it.
#[derive(Debug)]
pub struct CliError {
    pub code: String,
    pub message: String,
}

impl CliError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)
    }
}
