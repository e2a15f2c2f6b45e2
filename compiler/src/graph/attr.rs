//! Node attributes as typed values, kept in a sorted map so printing is deterministic.

use crate::tensor::DType;
use std::collections::BTreeMap;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<String>),
    /// An element type (e.g. `Cast`'s `to`).
    Type(DType),
}

impl AttrValue {
    /// Short name of the kind, used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AttrValue::Int(_) => "int",
            AttrValue::Float(_) => "float",
            AttrValue::Str(_) => "string",
            AttrValue::Ints(_) => "ints",
            AttrValue::Floats(_) => "floats",
            AttrValue::Strs(_) => "strings",
            AttrValue::Type(_) => "type",
        }
    }
}

/// Attributes of a node, by name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Attrs(pub BTreeMap<String, AttrValue>);

impl Attrs {
    pub fn new() -> Self {
        Attrs(BTreeMap::new())
    }

    /// Builder-style insert.
    pub fn with(mut self, name: &str, v: AttrValue) -> Self {
        self.0.insert(name.to_string(), v);
        self
    }

    pub fn set(&mut self, name: &str, v: AttrValue) {
        self.0.insert(name.to_string(), v);
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.0.get(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &AttrValue)> {
        self.0.iter()
    }

    /// An `int` attribute; errors name the attribute when absent or of another kind.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            Some(AttrValue::Int(i)) => Ok(*i),
            other => Err(wrong(name, "int", other)),
        }
    }

    pub fn float(&self, name: &str) -> Result<f32, String> {
        match self.get(name) {
            Some(AttrValue::Float(f)) => Ok(*f),
            other => Err(wrong(name, "float", other)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, String> {
        match self.get(name) {
            Some(AttrValue::Str(s)) => Ok(s),
            other => Err(wrong(name, "string", other)),
        }
    }

    pub fn ints(&self, name: &str) -> Result<&[i64], String> {
        match self.get(name) {
            Some(AttrValue::Ints(v)) => Ok(v),
            other => Err(wrong(name, "ints", other)),
        }
    }

    pub fn floats(&self, name: &str) -> Result<&[f32], String> {
        match self.get(name) {
            Some(AttrValue::Floats(v)) => Ok(v),
            other => Err(wrong(name, "floats", other)),
        }
    }

    pub fn dtype(&self, name: &str) -> Result<DType, String> {
        match self.get(name) {
            Some(AttrValue::Type(t)) => Ok(*t),
            other => Err(wrong(name, "type", other)),
        }
    }

    /// An optional float: `None` when absent, an error when present with another kind.
    pub fn opt_float(&self, name: &str) -> Result<Option<f32>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Float(f)) => Ok(Some(*f)),
            other => Err(wrong(name, "float", other)),
        }
    }

    /// An `ints` attribute converted to `usize` (errors on negative entries).
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>, String> {
        self.ints(name)?
            .iter()
            .map(|&i| {
                usize::try_from(i).map_err(|_| format!("attribute '{name}' has negative entry {i}"))
            })
            .collect()
    }
}

fn wrong(name: &str, want: &str, got: Option<&AttrValue>) -> String {
    match got {
        None => format!("missing attribute '{name}' ({want})"),
        Some(v) => format!("attribute '{name}' must be {want}, found {}", v.kind()),
    }
}
