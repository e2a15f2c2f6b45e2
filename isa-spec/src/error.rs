//! Errors of encoding and decoding instructions. Field paths (`dst.size0`) name the exact
//! operand field at fault.

use std::fmt;

/// A field value does not fit the bits the spec gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    pub field: String,
    pub value: String,
    pub width: usize,
}

impl EncodeError {
    pub fn new(value: String, width: usize) -> Self {
        EncodeError {
            field: String::new(),
            value,
            width,
        }
    }
    /// Names the field (innermost first).
    pub fn at(mut self, field: &str) -> Self {
        self.field = field.to_string();
        self
    }
    /// Prefixes the field path with the enclosing operand's name.
    pub fn within(mut self, outer: &str) -> Self {
        self.field = if self.field.is_empty() {
            outer.to_string()
        } else {
            format!("{outer}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` value {} does not fit in {} bits",
            self.field, self.value, self.width
        )
    }
}

/// Bytes that are not a valid instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated { needed: usize, have: usize },
    UnknownOpcode(u8),
    BadEnum { field: String, value: u64 },
    ReservedNonZero { field: String },
    NonCanonical { field: String, message: String },
}

impl DecodeError {
    /// Prefixes the field path with the enclosing operand's name.
    pub fn within(self, outer: &str) -> Self {
        let join = |f: String| {
            if f.is_empty() {
                outer.to_string()
            } else {
                format!("{outer}.{f}")
            }
        };
        match self {
            DecodeError::BadEnum { field, value } => DecodeError::BadEnum {
                field: join(field),
                value,
            },
            DecodeError::ReservedNonZero { field } => {
                DecodeError::ReservedNonZero { field: join(field) }
            }
            DecodeError::NonCanonical { field, message } => DecodeError::NonCanonical {
                field: join(field),
                message,
            },
            other => other,
        }
    }

    /// The field at fault, if the error concerns one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::BadEnum { field, .. }
            | DecodeError::ReservedNonZero { field }
            | DecodeError::NonCanonical { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, have } => {
                write!(
                    f,
                    "truncated instruction: needs {needed} bytes, {have} left"
                )
            }
            DecodeError::UnknownOpcode(b) => write!(f, "unknown opcode {b:#04x}"),
            DecodeError::BadEnum { field, value } => {
                write!(f, "field `{field}` has no value {value}")
            }
            DecodeError::ReservedNonZero { field } => {
                write!(f, "reserved bits `{field}` are not zero")
            }
            DecodeError::NonCanonical { field, message } => write!(f, "field `{field}`: {message}"),
        }
    }
}
