//! Textual form of field values in assembly: how each kind of value prints and parses, and the
//! `name=value` field map an assembly line is split into. The per-instruction printer and
//! parser generated from spec.toml call into this module.

use std::fmt::Write as _;

/// A value that prints to, and parses from, one whitespace-free assembly token.
pub trait AsmValue: Sized {
    fn write_asm(&self, out: &mut String);
    fn parse_asm(s: &str) -> Result<Self, String>;
}

/// Parses a decimal or `0x` hexadecimal unsigned integer.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16),
        None => s.replace('_', "").parse::<u64>(),
    };
    r.map_err(|_| format!("expected an unsigned integer, found `{s}`"))
}

/// Parses a decimal or `0x` hexadecimal integer with an optional sign.
pub fn parse_i64(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let mag = parse_u64(body).map_err(|_| format!("expected an integer, found `{s}`"))?;
    let v = if neg { -(mag as i128) } else { mag as i128 };
    i64::try_from(v).map_err(|_| format!("integer `{s}` is out of range"))
}

impl AsmValue for u64 {
    fn write_asm(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        parse_u64(s)
    }
}

impl AsmValue for i64 {
    fn write_asm(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        parse_i64(s)
    }
}

impl AsmValue for bool {
    fn write_asm(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        match s {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("expected true or false, found `{s}`")),
        }
    }
}

impl AsmValue for f32 {
    fn write_asm(&self, out: &mut String) {
        // Debug formatting is the shortest text that reads back to the same value.
        let _ = write!(out, "{self:?}");
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        s.parse::<f32>()
            .map_err(|_| format!("expected a number, found `{s}`"))
    }
}

/// A field-level error while building an instruction from assembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The `name=value` tokens of one assembly line, in order, with the column of each value.
#[derive(Clone, Debug, Default)]
pub struct FieldMap {
    entries: Vec<(String, String, usize)>,
}

impl FieldMap {
    pub fn push(&mut self, name: &str, value: &str, column: usize) {
        self.entries
            .push((name.to_string(), value.to_string(), column));
    }

    /// Column (1-based) of field `name`'s value, if present.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.2)
    }

    /// Removes and parses field `name`; absent fields take `default` (assembly text) or fail.
    pub fn take<T: AsmValue>(
        &mut self,
        name: &str,
        default: Option<&str>,
    ) -> Result<T, FieldError> {
        let err = |message: String| FieldError {
            field: name.to_string(),
            message,
        };
        if let Some(i) = self.entries.iter().position(|e| e.0 == name) {
            let (_, v, _) = self.entries.remove(i);
            if self.entries.iter().any(|e| e.0 == name) {
                return Err(err(format!("field `{name}` given twice")));
            }
            return T::parse_asm(&v).map_err(err);
        }
        match default {
            Some(d) => T::parse_asm(d).map_err(err),
            None => Err(err(format!("missing field `{name}`"))),
        }
    }

    /// Names of fields not consumed by `take`.
    pub fn leftover(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.0.as_str()).collect()
    }
}
