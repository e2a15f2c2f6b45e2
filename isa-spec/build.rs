//! Generates Rust from `spec.toml`: machine and cost constants, enums, operand layouts, the
//! instruction types, their encoder/decoder (both walk the same field table), random-instance
//! generators for tests, and the field-level assembly printer/parser. Output: `$OUT_DIR/isa.rs`.

use std::fmt::Write as _;

#[path = "src/spec_model.rs"]
#[allow(dead_code)] // the build script reads only part of the model
mod spec_model;
use spec_model::{FieldDef, Spec};

fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn layout_type(name: &str) -> String {
    camel(name)
}

/// Rust type of a field, or None for reserved bits and the header's opcode.
fn field_type(spec: &Spec, f: &FieldDef) -> Option<String> {
    Some(match f.kind.as_str() {
        "reserved" => return None,
        "uint" | "sem" => "u64".into(),
        "int" => "i64".into(),
        "bool" => "bool".into(),
        "f32" => "f32".into(),
        "enum" => camel(f.enum_name.as_deref().expect("enum field names its enum")),
        other => {
            assert!(
                spec.layouts.contains_key(other),
                "unknown field kind {other}"
            );
            layout_type(other)
        }
    })
}

fn gen_consts(
    out: &mut String,
    module: &str,
    doc: &str,
    table: &std::collections::BTreeMap<String, toml::Value>,
) {
    writeln!(out, "#[doc = {doc:?}]\npub mod {module} {{").unwrap();
    for (k, v) in table {
        let name = k.to_uppercase();
        match v {
            toml::Value::Integer(i) => writeln!(out, "    pub const {name}: u64 = {i};").unwrap(),
            toml::Value::Float(f) => writeln!(out, "    pub const {name}: f64 = {f:?};").unwrap(),
            toml::Value::String(s) => writeln!(out, "    pub const {name}: &str = {s:?};").unwrap(),
            toml::Value::Array(rows) if k == "partition_rules" => {
                writeln!(
                    out,
                    "    /// (max_count, allowed starts), first match applies."
                )
                .unwrap();
                write!(out, "    pub const {name}: &[(u64, &[u64])] = &[").unwrap();
                for r in rows {
                    let max = r["max_count"].as_integer().expect("max_count");
                    let starts: Vec<String> = r["starts"]
                        .as_array()
                        .expect("starts")
                        .iter()
                        .map(|s| s.as_integer().expect("start").to_string())
                        .collect();
                    write!(out, "({max}, &[{}]), ", starts.join(", ")).unwrap();
                }
                writeln!(out, "];").unwrap();
            }
            other => panic!("spec.toml: unsupported value for {k}: {other:?}"),
        }
    }
    writeln!(out, "}}\n").unwrap();
}

fn gen_enum(out: &mut String, name: &str, def: &spec_model::EnumDef) {
    let ty = camel(name);
    let n = def.values.len();
    writeln!(out, "#[doc = {:?}]", def.doc).unwrap();
    writeln!(
        out,
        "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]"
    )
    .unwrap();
    writeln!(out, "pub enum {ty} {{").unwrap();
    for (i, v) in def.values.iter().enumerate() {
        if i == 0 {
            writeln!(out, "    #[default]").unwrap();
        }
        writeln!(out, "    {},", camel(v)).unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    writeln!(out, "impl {ty} {{").unwrap();
    write!(out, "    pub const ALL: [{ty}; {n}] = [").unwrap();
    for v in &def.values {
        write!(out, "{ty}::{}, ", camel(v)).unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "    pub fn code(self) -> u64 {{ self as u64 }}").unwrap();
    writeln!(out, "    pub fn from_code(code: u64) -> Option<{ty}> {{ {ty}::ALL.get(usize::try_from(code).ok()?).copied() }}").unwrap();
    writeln!(
        out,
        "    pub fn name(self) -> &'static str {{ match self {{"
    )
    .unwrap();
    for v in &def.values {
        writeln!(out, "        {ty}::{} => {v:?},", camel(v)).unwrap();
    }
    writeln!(out, "    }} }}").unwrap();
    writeln!(out, "    pub fn from_name(s: &str) -> Option<{ty}> {{ {ty}::ALL.into_iter().find(|v| v.name() == s) }}").unwrap();
    writeln!(out, "}}\n").unwrap();
    writeln!(out, "impl crate::asm_value::AsmValue for {ty} {{").unwrap();
    writeln!(
        out,
        "    fn write_asm(&self, out: &mut String) {{ out.push_str(self.name()); }}"
    )
    .unwrap();
    writeln!(out, "    fn parse_asm(s: &str) -> Result<Self, String> {{ {ty}::from_name(s).ok_or_else(|| format!(\"unknown {name} `{{s}}` (expected one of: {})\")) }}", def.values.join(", ")).unwrap();
    writeln!(out, "}}\n").unwrap();
}

/// Statements encoding `fields` of `self` (or of `self.<prefix>`) at `base`.
fn gen_encode_fields(out: &mut String, spec: &Spec, fields: &[FieldDef], skip_opcode: bool) {
    for f in fields {
        let at = at(f.lsb);
        if skip_opcode && f.name == "opcode" {
            continue;
        }
        let (w, n) = (f.width, &f.name);
        let line = match f.kind.as_str() {
            "reserved" => continue,
            "uint" | "sem" => format!("crate::bits::put_uint(buf, {at}, {w}, self.{n}).map_err(|e| e.at({n:?}))?;"),
            "int" => format!("crate::bits::put_int(buf, {at}, {w}, self.{n}).map_err(|e| e.at({n:?}))?;"),
            "bool" => format!("crate::bits::put_uint(buf, {at}, {w}, self.{n} as u64).map_err(|e| e.at({n:?}))?;"),
            "f32" => format!("crate::bits::put_uint(buf, {at}, {w}, u64::from(self.{n}.to_bits())).map_err(|e| e.at({n:?}))?;"),
            "enum" => format!("crate::bits::put_uint(buf, {at}, {w}, self.{n}.code()).map_err(|e| e.at({n:?}))?;"),
            _ => {
                assert_eq!(spec.layouts[&f.kind].bits, w, "field {n}: width must equal layout {} bits", f.kind);
                format!("self.{n}.encode_at(buf, {at}).map_err(|e| e.within({n:?}))?;")
            }
        };
        writeln!(out, "        {line}").unwrap();
    }
}

fn gen_decode_fields(out: &mut String, spec: &Spec, fields: &[FieldDef], skip_opcode: bool) {
    for f in fields {
        let at = at(f.lsb);
        if skip_opcode && f.name == "opcode" {
            continue;
        }
        let (w, n) = (f.width, &f.name);
        let line = match f.kind.as_str() {
            "reserved" => format!("crate::bits::check_reserved(buf, {at}, {w}, {n:?})?;"),
            "uint" | "sem" => format!("let {n} = crate::bits::get_uint(buf, {at}, {w});"),
            "int" => format!("let {n} = crate::bits::get_int(buf, {at}, {w});"),
            "bool" => format!("let {n} = crate::bits::get_uint(buf, {at}, {w}) != 0;"),
            "f32" => {
                format!("let {n} = f32::from_bits(crate::bits::get_uint(buf, {at}, {w}) as u32);")
            }
            "enum" => {
                let ty = camel(f.enum_name.as_deref().unwrap());
                format!("let {n} = {{ let c = crate::bits::get_uint(buf, {at}, {w}); {ty}::from_code(c).ok_or(DecodeError::BadEnum {{ field: {n:?}.to_string(), value: c }})? }};")
            }
            other => {
                let _ = &spec.layouts[other];
                format!(
                    "let {n} = {}::decode_at(buf, {at}).map_err(|e| e.within({n:?}))?;",
                    layout_type(other)
                )
            }
        };
        writeln!(out, "        {line}").unwrap();
    }
}

fn gen_arbitrary_fields(out: &mut String, fields: &[FieldDef], skip_opcode: bool) {
    for f in fields {
        if skip_opcode && f.name == "opcode" {
            continue;
        }
        let (w, n) = (f.width, &f.name);
        let line = match f.kind.as_str() {
            "reserved" => continue,
            "uint" | "sem" => format!("let {n} = rng.bits({w});"),
            "int" => format!("let {n} = crate::bits::sign_extend(rng.bits({w}), {w});"),
            "bool" => format!("let {n} = rng.bits(1) != 0;"),
            "f32" => format!("let {n} = f32::from_bits(rng.bits(32) as u32);"),
            "enum" => {
                let ty = camel(f.enum_name.as_deref().unwrap());
                format!("let {n} = {ty}::ALL[rng.below({ty}::ALL.len() as u64) as usize];")
            }
            other => format!("let {n} = {}::arbitrary(rng);", layout_type(other)),
        };
        writeln!(out, "        {line}").unwrap();
    }
}

/// The bit position expression of a field at `lsb` within its operand.
fn at(lsb: usize) -> String {
    if lsb == 0 {
        "bit0".into()
    } else {
        format!("bit0 + {lsb}")
    }
}

fn struct_fields(spec: &Spec, fields: &[FieldDef], skip_opcode: bool) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|f| !(skip_opcode && f.name == "opcode"))
        .filter_map(|f| field_type(spec, f).map(|t| (f.name.clone(), t)))
        .collect()
}

fn gen_layout(out: &mut String, spec: &Spec, name: &str, l: &spec_model::Layout) {
    let ty = layout_type(name);
    let is_header = name == "header";
    let fields = struct_fields(spec, &l.fields, is_header);
    writeln!(out, "#[doc = {:?}]", l.doc).unwrap();
    writeln!(
        out,
        "#[derive(Clone, Copy, Debug, PartialEq, Default)]\npub struct {ty} {{"
    )
    .unwrap();
    for (n, t) in &fields {
        writeln!(out, "    pub {n}: {t},").unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    writeln!(out, "impl {ty} {{").unwrap();
    writeln!(out, "    pub const BITS: usize = {};", l.bits).unwrap();
    writeln!(
        out,
        "    /// Writes the operand's fields into `buf` starting at bit `base`."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn encode_at(&self, buf: &mut [u8], bit0: usize) -> Result<(), EncodeError> {{"
    )
    .unwrap();
    gen_encode_fields(out, spec, &l.fields, is_header);
    writeln!(out, "        Ok(())\n    }}").unwrap();
    writeln!(out, "    /// Reads the operand from `buf` at bit `base`, rejecting reserved bits and non-canonical forms.").unwrap();
    writeln!(
        out,
        "    pub fn decode_at(buf: &[u8], bit0: usize) -> Result<{ty}, DecodeError> {{"
    )
    .unwrap();
    gen_decode_fields(out, spec, &l.fields, is_header);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    writeln!(out, "        let v = {ty} {{ {} }};", names.join(", ")).unwrap();
    writeln!(out, "        v.check_canonical()?;\n        Ok(v)\n    }}").unwrap();
    writeln!(
        out,
        "    /// A random canonical instance, for round-trip tests."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn arbitrary(rng: &mut crate::rng::Rng) -> {ty} {{"
    )
    .unwrap();
    gen_arbitrary_fields(out, &l.fields, is_header);
    writeln!(out, "        let mut v = {ty} {{ {} }};", names.join(", ")).unwrap();
    writeln!(out, "        v.canonicalize();\n        v\n    }}").unwrap();
    writeln!(out, "}}\n").unwrap();
}

fn gen_instructions(out: &mut String, spec: &Spec) {
    // Opcode enum.
    writeln!(
        out,
        "/// Every instruction's opcode (the first byte of its encoding)."
    )
    .unwrap();
    writeln!(
        out,
        "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum Opcode {{"
    )
    .unwrap();
    for i in &spec.instructions {
        writeln!(
            out,
            "    {} = {:#04x},",
            camel(&i.name.to_lowercase()),
            i.opcode
        )
        .unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    let n = spec.instructions.len();
    writeln!(out, "impl Opcode {{").unwrap();
    write!(out, "    pub const ALL: [Opcode; {n}] = [").unwrap();
    for i in &spec.instructions {
        write!(out, "Opcode::{}, ", camel(&i.name.to_lowercase())).unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "    pub fn byte(self) -> u8 {{ self as u8 }}").unwrap();
    writeln!(out, "    pub fn from_byte(b: u8) -> Option<Opcode> {{ Opcode::ALL.into_iter().find(|o| o.byte() == b) }}").unwrap();
    writeln!(out, "    pub fn from_name(s: &str) -> Option<Opcode> {{ Opcode::ALL.into_iter().find(|o| o.name() == s) }}").unwrap();
    let per =
        |out: &mut String, fname: &str, ret: &str, val: &dyn Fn(&spec_model::InstDef) -> String| {
            writeln!(out, "    pub fn {fname}(self) -> {ret} {{ match self {{").unwrap();
            for i in &spec.instructions {
                writeln!(
                    out,
                    "        Opcode::{} => {},",
                    camel(&i.name.to_lowercase()),
                    val(i)
                )
                .unwrap();
            }
            writeln!(out, "    }} }}").unwrap();
        };
    per(out, "name", "&'static str", &|i| format!("{:?}", i.name));
    per(out, "engine", "EngineClass", &|i| {
        format!("EngineClass::{}", camel(&i.engine))
    });
    per(out, "bits", "usize", &|i| i.bits.to_string());
    per(out, "semantics", "&'static str", &|i| {
        format!("{:?}", i.semantics)
    });
    per(out, "cost_rule", "&'static str", &|i| {
        format!("{:?}", i.cost)
    });
    per(out, "constraints", "&'static [&'static str]", &|i| {
        format!("&{:?}", i.constraints)
    });
    writeln!(out, "    /// Encoded size in bytes.\n    pub fn size_bytes(self) -> usize {{ self.bits() / 8 }}").unwrap();
    writeln!(out, "}}\n").unwrap();

    // Structs.
    for i in &spec.instructions {
        let ty = camel(&i.name.to_lowercase());
        let fields = struct_fields(spec, &i.fields, false);
        writeln!(
            out,
            "#[doc = {:?}]",
            format!("`{}`: {}", i.name, i.semantics)
        )
        .unwrap();
        writeln!(
            out,
            "#[derive(Clone, Copy, Debug, PartialEq, Default)]\npub struct {ty} {{"
        )
        .unwrap();
        writeln!(
            out,
            "    /// Semaphore waits and signal.\n    pub sync: Header,"
        )
        .unwrap();
        for (n, t) in &fields {
            writeln!(out, "    pub {n}: {t},").unwrap();
        }
        writeln!(out, "}}\n").unwrap();
        writeln!(out, "impl {ty} {{").unwrap();
        writeln!(out, "    #[allow(unused_variables)]\n    fn encode_fields(&self, buf: &mut [u8], bit0: usize) -> Result<(), EncodeError> {{").unwrap();
        gen_encode_fields(out, spec, &i.fields, false);
        writeln!(out, "        Ok(())\n    }}").unwrap();
        writeln!(out, "    #[allow(unused_variables)]\n    fn decode_fields(buf: &[u8], bit0: usize, sync: Header) -> Result<{ty}, DecodeError> {{").unwrap();
        gen_decode_fields(out, spec, &i.fields, false);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let mut all = vec!["sync"];
        all.extend(names.iter());
        writeln!(out, "        Ok({ty} {{ {} }})\n    }}", all.join(", ")).unwrap();
        writeln!(out, "    #[allow(unused_variables)]\n    fn arbitrary_fields(rng: &mut crate::rng::Rng, sync: Header) -> {ty} {{").unwrap();
        gen_arbitrary_fields(out, &i.fields, false);
        writeln!(out, "        {ty} {{ {} }}\n    }}", all.join(", ")).unwrap();
        // Printer.
        writeln!(
            out,
            "    #[allow(unused_variables, clippy::ptr_arg)] // instructions without fields write nothing\n    fn write_fields(&self, out: &mut String) {{"
        )
        .unwrap();
        writeln!(
            out,
            "        #[allow(unused_imports)]\n        use crate::asm_value::AsmValue;"
        )
        .unwrap();
        for f in &i.fields {
            let Some(t) = field_type(spec, f) else {
                continue;
            };
            let n = &f.name;
            let skip = match &f.default {
                Some(d) => format!("if <{t} as AsmValue>::parse_asm({d:?}).ok() != Some(self.{n})"),
                None => String::new(),
            };
            writeln!(
                out,
                "        {skip} {{ out.push(' '); out.push_str({:?}); self.{n}.write_asm(out); }}",
                format!("{n}=")
            )
            .unwrap();
        }
        writeln!(out, "    }}").unwrap();
        // Parser.
        writeln!(out, "    #[allow(unused_variables)]\n    fn parse_fields(fields: &mut crate::asm_value::FieldMap, sync: Header) -> Result<{ty}, crate::asm_value::FieldError> {{").unwrap();
        for f in &i.fields {
            let Some(t) = field_type(spec, f) else {
                continue;
            };
            let n = &f.name;
            let default = match &f.default {
                Some(d) => format!("Some({d:?})"),
                None => "None".into(),
            };
            writeln!(
                out,
                "        let {n}: {t} = fields.take({n:?}, {default})?;"
            )
            .unwrap();
        }
        writeln!(out, "        Ok({ty} {{ {} }})\n    }}", all.join(", ")).unwrap();
        writeln!(out, "}}\n").unwrap();
    }

    // Inst enum and dispatch.
    writeln!(
        out,
        "/// One decoded instruction.\n#[derive(Clone, Copy, Debug, PartialEq)]\npub enum Inst {{"
    )
    .unwrap();
    for i in &spec.instructions {
        let ty = camel(&i.name.to_lowercase());
        writeln!(out, "    {ty}({ty}),").unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    let each = |out: &mut String, body: &str| {
        for i in &spec.instructions {
            let ty = camel(&i.name.to_lowercase());
            writeln!(
                out,
                "            Inst::{ty}(x) => {},",
                body.replace("$T", &ty)
            )
            .unwrap();
        }
    };
    // One `Opcode::T => Inst::T(...)` arm per instruction, `$T` standing for its type name.
    let each_op = |out: &mut String, body: &str| {
        for i in &spec.instructions {
            let ty = camel(&i.name.to_lowercase());
            writeln!(
                out,
                "            Opcode::{ty} => Inst::{ty}({}),",
                body.replace("$T", &ty)
            )
            .unwrap();
        }
    };
    writeln!(out, "impl Inst {{").unwrap();
    writeln!(
        out,
        "    pub fn opcode(&self) -> Opcode {{\n        match self {{"
    )
    .unwrap();
    each(out, "{ let _ = x; Opcode::$T }");
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    pub fn sync(&self) -> &Header {{\n        match self {{"
    )
    .unwrap();
    each(out, "&x.sync");
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    pub fn sync_mut(&mut self) -> &mut Header {{\n        match self {{"
    )
    .unwrap();
    each(out, "&mut x.sync");
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    /// Appends the encoding to `out`; fails if a field value does not fit its bits."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{"
    )
    .unwrap();
    writeln!(out, "        let start = out.len();\n        out.resize(start + self.opcode().size_bytes(), 0);\n        let buf = &mut out[start..];").unwrap();
    writeln!(out, "        buf[0] = self.opcode().byte();\n        self.sync().encode_at(buf, 0)?;\n        match self {{").unwrap();
    each(out, "x.encode_fields(buf, 0)?");
    writeln!(out, "        }}\n        Ok(())\n    }}").unwrap();
    writeln!(out, "    /// Decodes one instruction from the front of `bytes`, returning it and its size in bytes.").unwrap();
    writeln!(
        out,
        "    pub fn decode(bytes: &[u8]) -> Result<(Inst, usize), DecodeError> {{"
    )
    .unwrap();
    writeln!(out, "        let Some(&b) = bytes.first() else {{ return Err(DecodeError::Truncated {{ needed: 1, have: 0 }}) }};").unwrap();
    writeln!(
        out,
        "        let op = Opcode::from_byte(b).ok_or(DecodeError::UnknownOpcode(b))?;"
    )
    .unwrap();
    writeln!(out, "        let n = op.size_bytes();\n        if bytes.len() < n {{ return Err(DecodeError::Truncated {{ needed: n, have: bytes.len() }}); }}").unwrap();
    writeln!(out, "        let buf = &bytes[..n];\n        let sync = Header::decode_at(buf, 0).map_err(|e| e.within(\"sync\"))?;").unwrap();
    writeln!(out, "        let inst = match op {{").unwrap();
    each_op(out, "$T::decode_fields(buf, 0, sync)?");
    writeln!(out, "        }};\n        Ok((inst, n))\n    }}").unwrap();
    writeln!(
        out,
        "    /// A random instance of `op` whose fields all fit (constraints are not applied)."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn arbitrary(op: Opcode, rng: &mut crate::rng::Rng) -> Inst {{"
    )
    .unwrap();
    writeln!(
        out,
        "        let sync = Header::arbitrary(rng);\n        match op {{"
    )
    .unwrap();
    each_op(out, "$T::arbitrary_fields(rng, sync)");
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    /// Writes ` name=value` for every field that is not at its default."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn write_fields(&self, out: &mut String) {{\n        match self {{"
    )
    .unwrap();
    each(out, "x.write_fields(out)");
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    /// Builds an instruction of `op` from parsed `name=value` fields (consuming them)."
    )
    .unwrap();
    writeln!(out, "    pub fn parse_fields(op: Opcode, fields: &mut crate::asm_value::FieldMap, sync: Header) -> Result<Inst, crate::asm_value::FieldError> {{").unwrap();
    writeln!(out, "        Ok(match op {{").unwrap();
    each_op(out, "$T::parse_fields(fields, sync)?");
    writeln!(out, "        }})\n    }}").unwrap();
    writeln!(out, "}}\n").unwrap();
}

fn main() {
    println!("cargo:rerun-if-changed=spec.toml");
    println!("cargo:rerun-if-changed=src/spec_model.rs");
    let text = std::fs::read_to_string("spec.toml").expect("read isa-spec/spec.toml");
    let spec = Spec::parse(&text).unwrap_or_else(|e| panic!("isa-spec/spec.toml: {e}"));
    let mut out = String::new();
    out.push_str("// @generated by isa-spec/build.rs from isa-spec/spec.toml. Do not edit.\n\n");
    gen_consts(
        &mut out,
        "machine",
        "Machine parameters (spec.toml [machine]).",
        &spec.machine,
    );
    gen_consts(
        &mut out,
        "cost",
        "Cost-model parameters (spec.toml [cost]).",
        &spec.cost,
    );
    for (name, def) in &spec.enums {
        gen_enum(&mut out, name, def);
    }
    for (name, l) in &spec.layouts {
        gen_layout(&mut out, &spec, name, l);
    }
    gen_instructions(&mut out, &spec);
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("isa.rs");
    std::fs::write(path, out).expect("write generated isa.rs");
}
