//! The shape of `spec.toml`, shared by the build script (which generates Rust from it) and the
//! library (which renders ISA.md from it). Plain serde data; no logic beyond lookups.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
pub struct Spec {
    pub machine: BTreeMap<String, toml::Value>,
    pub cost: BTreeMap<String, toml::Value>,
    pub enums: BTreeMap<String, EnumDef>,
    pub layouts: BTreeMap<String, Layout>,
    pub instructions: Vec<InstDef>,
    pub constraints: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct EnumDef {
    pub doc: String,
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Layout {
    pub doc: String,
    pub bits: usize,
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub lsb: usize,
    pub width: usize,
    /// uint, int, bool, f32, sem, enum, reserved, or the name of a layout (ap, dma_ap, scalar).
    pub kind: String,
    #[serde(rename = "enum")]
    pub enum_name: Option<String>,
    /// Assembly text of the value used when the field is omitted; fields without one are required.
    pub default: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct InstDef {
    pub name: String,
    pub engine: String,
    pub opcode: u8,
    pub bits: usize,
    pub semantics: String,
    pub cost: String,
    pub fields: Vec<FieldDef>,
    pub constraints: Vec<String>,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
