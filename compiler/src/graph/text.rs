//! The graph IR's text form (dump name `graph`): a deterministic printer and a parser such that
//! `parse(&print(g)) == g` for every graph.
//!
//! ```text
//! graph "mlp" {
//!   input %0 "X": float[8, 784]
//!   const %1 "W": float[784, 10] = [0.5, -1.0, ...]
//!   %2 "Y": float[8, 10] = MatMul(%0, %1) loc("matmul0")
//!   %3 "a": float[4, 10], %4 "b": float[4, 10] = Split(%2) {axis = 0, split = [4, 4]} loc("split0")
//!   output %3, %4
//! }
//! ```
//!
//! * `%N` is the value's [`ValueId`]; ids are printed as stored, so arenas round-trip exactly.
//! * Quoted strings after ids are ONNX value names; `loc("...")` is the node's ONNX name.
//! * Attribute values: ints (`3`), floats (always with `.`, `e`, `inf` or `NaN`: `1.0`, `1e-5`),
//!   strings (`"linear"`), lists (`[1, 2]`, `[1.0]`, `["a"]`, empty lists typed as `ints[]`,
//!   `floats[]`, `strings[]`), and element types (`to = float16`).
//! * Constants list their elements in row-major order. With [`PrintOptions::elide_above`] large
//!   constants print as `<N elements elided>` for human eyes; such text does not parse back.
//! * `#` starts a comment that runs to the end of the line.

use super::{AttrValue, Attrs, Graph, Node, NodeId, Op, TensorType, Value, ValueDef, ValueId};
use crate::diag::{Code, Diagnostic, Pos};
use crate::tensor::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Printer settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrintOptions {
    /// Constants with more elements than this print as `<N elements elided>` (not parseable).
    pub elide_above: Option<usize>,
}

/// Prints `g` in full (parses back equal).
pub fn print(g: &Graph) -> String {
    print_with(g, PrintOptions::default())
}

/// Prints `g` with the given options.
pub fn print_with(g: &Graph, opts: PrintOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", quote(&g.name));
    for &v in &g.inputs {
        let _ = writeln!(s, "  input {}", value_decl(g, v));
    }
    for (v, t) in g.constants() {
        let _ = write!(s, "  const {} = ", value_decl(g, v));
        match opts.elide_above {
            Some(n) if t.len() > n => {
                let _ = write!(s, "<{} elements elided>", t.len());
            }
            _ => print_tensor_data(&mut s, t),
        }
        s.push('\n');
    }
    for n in &g.nodes {
        s.push_str("  ");
        if n.outputs.is_empty() {
            s.push_str("()");
        }
        for (i, &o) in n.outputs.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&value_decl(g, o));
        }
        let _ = write!(s, " = {}(", n.op.name());
        for (i, &u) in n.inputs.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "{u}");
        }
        s.push(')');
        if !n.attrs.is_empty() {
            s.push_str(" {");
            for (i, (k, v)) in n.attrs.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{k} = ");
                print_attr(&mut s, v);
            }
            s.push('}');
        }
        let _ = writeln!(s, " loc({})", quote(&n.name));
    }
    s.push_str("  output");
    for (i, &o) in g.outputs.iter().enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        let _ = write!(s, "{o}");
    }
    s.push_str("\n}\n");
    s
}

fn value_decl(g: &Graph, v: ValueId) -> String {
    match g.values.get(v.index()) {
        Some(val) => format!("{v} {}: {}", quote(&val.name), val.ty),
        None => format!("{v} \"<missing>\": ?"),
    }
}

/// Quotes a string with `\"`, `\\`, `\n`, `\t`, `\r` and `\u{..}` escapes.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn fmt_f32(s: &mut String, x: f32) {
    let _ = write!(s, "{x:?}");
}

fn print_attr(s: &mut String, v: &AttrValue) {
    match v {
        AttrValue::Int(i) => {
            let _ = write!(s, "{i}");
        }
        AttrValue::Float(f) => fmt_f32(s, *f),
        AttrValue::Str(t) => s.push_str(&quote(t)),
        AttrValue::Type(t) => s.push_str(t.name()),
        AttrValue::Ints(v) if v.is_empty() => s.push_str("ints[]"),
        AttrValue::Floats(v) if v.is_empty() => s.push_str("floats[]"),
        AttrValue::Strs(v) if v.is_empty() => s.push_str("strings[]"),
        AttrValue::Ints(v) => list(s, v, |s, i| {
            let _ = write!(s, "{i}");
        }),
        AttrValue::Floats(v) => list(s, v, |s, f| fmt_f32(s, *f)),
        AttrValue::Strs(v) => list(s, v, |s, t| s.push_str(&quote(t))),
    }
}

fn list<T>(s: &mut String, v: &[T], mut f: impl FnMut(&mut String, &T)) {
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        f(s, x);
    }
    s.push(']');
}

fn print_tensor_data(s: &mut String, t: &Tensor) {
    match t {
        Tensor::F32(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| fmt_f32(s, **x)),
        Tensor::F16(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| {
            fmt_f32(s, x.to_f32())
        }),
        Tensor::BF16(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| {
            fmt_f32(s, x.to_f32())
        }),
        Tensor::I64(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| {
            let _ = write!(s, "{x}");
        }),
        Tensor::I32(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| {
            let _ = write!(s, "{x}");
        }),
        Tensor::Bool(a) => list(s, &a.iter().collect::<Vec<_>>(), |s, x| {
            let _ = write!(s, "{x}");
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Value(u32),
    Str(String),
    Ident(String),
    Num(String),
    Punct(char),
    Eof,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Code::IrSyntax, msg).at_pos(Pos::of_offset(self.src, at))
    }

    fn skip_ws(&mut self) {
        let b = self.src.as_bytes();
        while self.pos < b.len() {
            match b[self.pos] {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.pos < b.len() && b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Returns the next token and the byte offset where it starts.
    fn next(&mut self) -> Result<(Tok, usize), Diagnostic> {
        self.skip_ws();
        let b = self.src.as_bytes();
        let start = self.pos;
        let Some(&c) = b.get(self.pos) else {
            return Ok((Tok::Eof, start));
        };
        if c == b'%' {
            self.pos += 1;
            let d0 = self.pos;
            while self.pos < b.len() && b[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
            let n = self.src[d0..self.pos]
                .parse::<u32>()
                .map_err(|_| self.err(start, "expected a value id like %3"))?;
            return Ok((Tok::Value(n), start));
        }
        if c == b'"' {
            return self.string(start).map(|s| (Tok::Str(s), start));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while self.pos < b.len() && (b[self.pos].is_ascii_alphanumeric() || b[self.pos] == b'_')
            {
                self.pos += 1;
            }
            return Ok((Tok::Ident(self.src[start..self.pos].to_string()), start));
        }
        if c.is_ascii_digit() || c == b'-' || c == b'+' {
            self.pos += 1;
            while self.pos < b.len() {
                let ch = b[self.pos];
                let sign_ok = (ch == b'-' || ch == b'+') && matches!(b[self.pos - 1], b'e' | b'E');
                if ch.is_ascii_alphanumeric() || ch == b'.' || sign_ok {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            return Ok((Tok::Num(self.src[start..self.pos].to_string()), start));
        }
        if b"{}()[],=:<>".contains(&c) {
            self.pos += 1;
            return Ok((Tok::Punct(c as char), start));
        }
        let ch = self.src[start..].chars().next().unwrap_or('?');
        Err(self.err(start, format!("unexpected character '{ch}'")))
    }

    fn string(&mut self, start: usize) -> Result<String, Diagnostic> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = start + 1 + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((j, 'u')) => {
                        let rest = &self.src[start + 1 + j + 1..];
                        let close = rest.find('}').filter(|_| rest.starts_with('{'));
                        let cp = close
                            .and_then(|c| u32::from_str_radix(&rest[1..c], 16).ok())
                            .and_then(char::from_u32);
                        match (cp, close) {
                            (Some(ch), Some(c)) => {
                                out.push(ch);
                                for _ in 0..c + 1 {
                                    chars.next();
                                }
                            }
                            _ => return Err(self.err(start + 1 + j, "bad \\u{..} escape")),
                        }
                    }
                    _ => return Err(self.err(start + 1 + i, "unknown escape in string")),
                },
                c => out.push(c),
            }
        }
        Err(self.err(start, "unterminated string"))
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok,
    at: usize,
}

/// Parses the text form back into a graph. Errors carry line and column (code `E2001`) or name
/// the inconsistent id (`E2002`). The result is not verified; call [`super::verify`].
pub fn parse(src: &str) -> Result<Graph, Diagnostic> {
    let mut lex = Lexer { src, pos: 0 };
    let (tok, at) = lex.next()?;
    let mut p = Parser { lex, tok, at };
    p.graph()
}

type Decl = (ValueId, String, TensorType, usize);

impl<'a> Parser<'a> {
    fn bump(&mut self) -> Result<Tok, Diagnostic> {
        let (t, at) = self.lex.next()?;
        self.at = at;
        Ok(std::mem::replace(&mut self.tok, t))
    }

    fn err(&self, msg: impl Into<String>) -> Diagnostic {
        self.lex.err(self.at, msg)
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::Value(n) => format!("%{n}"),
            Tok::Str(s) => quote(s),
            Tok::Ident(s) | Tok::Num(s) => format!("'{s}'"),
            Tok::Punct(c) => format!("'{c}'"),
            Tok::Eof => "end of input".into(),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), Diagnostic> {
        if self.tok == Tok::Punct(c) {
            self.bump()?;
            Ok(())
        } else {
            Err(self.err(format!("expected '{c}', found {}", self.describe())))
        }
    }

    fn eat(&mut self, c: char) -> Result<bool, Diagnostic> {
        if self.tok == Tok::Punct(c) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn keyword(&mut self, kw: &str) -> Result<(), Diagnostic> {
        if self.tok == Tok::Ident(kw.into()) {
            self.bump()?;
            Ok(())
        } else {
            Err(self.err(format!("expected '{kw}', found {}", self.describe())))
        }
    }

    fn string(&mut self) -> Result<String, Diagnostic> {
        match self.bump()? {
            Tok::Str(s) => Ok(s),
            _ => Err(self.lex.err(self.at_prev(), "expected a quoted string")),
        }
    }

    /// Offset of the token just consumed (used for errors after `bump`).
    fn at_prev(&self) -> usize {
        self.at.min(self.lex.src.len())
    }

    fn value_ref(&mut self) -> Result<ValueId, Diagnostic> {
        match self.tok {
            Tok::Value(n) => {
                self.bump()?;
                Ok(ValueId(n))
            }
            _ => Err(self.err(format!(
                "expected a value id like %3, found {}",
                self.describe()
            ))),
        }
    }

    fn usize_num(&mut self) -> Result<usize, Diagnostic> {
        match &self.tok {
            Tok::Num(s) => {
                let v = s
                    .parse::<usize>()
                    .map_err(|_| self.err(format!("expected a dimension, found '{s}'")))?;
                self.bump()?;
                Ok(v)
            }
            _ => Err(self.err(format!("expected a dimension, found {}", self.describe()))),
        }
    }

    fn ty(&mut self) -> Result<TensorType, Diagnostic> {
        let dtype = match &self.tok {
            Tok::Ident(s) => DType::from_name(s)
                .ok_or_else(|| self.err(format!("unknown element type '{s}'")))?,
            _ => {
                return Err(self.err(format!(
                    "expected an element type, found {}",
                    self.describe()
                )))
            }
        };
        self.bump()?;
        self.expect('[')?;
        let mut shape = Vec::new();
        if !self.eat(']')? {
            loop {
                shape.push(self.usize_num()?);
                if self.eat(']')? {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(TensorType { dtype, shape })
    }

    fn decl(&mut self) -> Result<Decl, Diagnostic> {
        let at = self.at;
        let id = self.value_ref()?;
        let name = self.string()?;
        self.expect(':')?;
        let ty = self.ty()?;
        Ok((id, name, ty, at))
    }

    fn graph(&mut self) -> Result<Graph, Diagnostic> {
        self.keyword("graph")?;
        let name = self.string()?;
        self.expect('{')?;
        let mut values: BTreeMap<u32, (Value, usize)> = BTreeMap::new();
        let mut g = Graph::new(name);
        let mut put =
            |p: &Parser, (id, name, ty, at): Decl, def: ValueDef| -> Result<(), Diagnostic> {
                if values.insert(id.0, (Value { name, ty, def }, at)).is_some() {
                    return Err(p
                        .lex
                        .err(at, format!("{id} is defined twice"))
                        .with_code(Code::IrBadId));
                }
                Ok(())
            };
        loop {
            match self.tok.clone() {
                Tok::Ident(k) if k == "input" => {
                    self.bump()?;
                    let d = self.decl()?;
                    g.inputs.push(d.0);
                    put(self, d, ValueDef::Input)?;
                }
                Tok::Ident(k) if k == "const" => {
                    self.bump()?;
                    let d = self.decl()?;
                    self.expect('=')?;
                    let t = self.tensor_data(&d.2)?;
                    put(self, d, ValueDef::Const(t))?;
                }
                Tok::Ident(k) if k == "output" => {
                    self.bump()?;
                    if matches!(self.tok, Tok::Value(_)) {
                        loop {
                            g.outputs.push(self.value_ref()?);
                            if !self.eat(',')? {
                                break;
                            }
                        }
                    }
                    self.expect('}')?;
                    break;
                }
                Tok::Value(_) | Tok::Punct('(') => {
                    let node_id = NodeId(g.nodes.len() as u32);
                    let mut outs = Vec::new();
                    if self.eat('(')? {
                        self.expect(')')?;
                    } else {
                        loop {
                            let d = self.decl()?;
                            outs.push(d.0);
                            let slot = outs.len() as u32 - 1;
                            put(
                                self,
                                d,
                                ValueDef::Node {
                                    node: node_id,
                                    slot,
                                },
                            )?;
                            if !self.eat(',')? {
                                break;
                            }
                        }
                    }
                    self.expect('=')?;
                    let op = match &self.tok {
                        Tok::Ident(s) => {
                            Op::from_name(s).ok_or_else(|| self.err(format!("unknown op '{s}'")))?
                        }
                        _ => {
                            return Err(
                                self.err(format!("expected an op name, found {}", self.describe()))
                            )
                        }
                    };
                    self.bump()?;
                    self.expect('(')?;
                    let mut inputs = Vec::new();
                    if !self.eat(')')? {
                        loop {
                            inputs.push(self.value_ref()?);
                            if self.eat(')')? {
                                break;
                            }
                            self.expect(',')?;
                        }
                    }
                    let mut attrs = Attrs::new();
                    if self.eat('{')? {
                        loop {
                            let key = match self.bump()? {
                                Tok::Ident(k) => k,
                                _ => {
                                    return Err(self
                                        .lex
                                        .err(self.at_prev(), "expected an attribute name"))
                                }
                            };
                            self.expect('=')?;
                            let v = self.attr_value()?;
                            if attrs.0.insert(key.clone(), v).is_some() {
                                return Err(self.err(format!("attribute '{key}' given twice")));
                            }
                            if self.eat('}')? {
                                break;
                            }
                            self.expect(',')?;
                        }
                    }
                    self.keyword("loc")?;
                    self.expect('(')?;
                    let name = self.string()?;
                    self.expect(')')?;
                    g.nodes.push(Node {
                        name,
                        op,
                        attrs,
                        inputs,
                        outputs: outs,
                    });
                }
                _ => {
                    return Err(self.err(format!(
                        "expected 'input', 'const', a node or 'output', found {}",
                        self.describe()
                    )))
                }
            }
        }
        if self.tok != Tok::Eof {
            return Err(self.err(format!("unexpected {} after the graph", self.describe())));
        }
        // Ids must be dense 0..n.
        for (expect, (&id, (_, at))) in values.iter().enumerate() {
            if id as usize != expect {
                return Err(self
                    .lex
                    .err(
                        *at,
                        format!("value ids must be dense: %{expect} is missing (found %{id})"),
                    )
                    .with_code(Code::IrBadId));
            }
        }
        g.values = values.into_values().map(|(v, _)| v).collect();
        Ok(g)
    }

    fn num_token(&mut self) -> Result<String, Diagnostic> {
        match self.tok.clone() {
            Tok::Num(s) => {
                self.bump()?;
                Ok(s)
            }
            Tok::Ident(s) if matches!(s.as_str(), "inf" | "NaN" | "true" | "false") => {
                self.bump()?;
                Ok(s)
            }
            _ => Err(self.err(format!("expected a number, found {}", self.describe()))),
        }
    }

    fn tensor_data(&mut self, ty: &TensorType) -> Result<Tensor, Diagnostic> {
        if self.tok == Tok::Punct('<') {
            return Err(self.err(
                "constant data was elided when printing; print the graph in full to parse it back",
            ));
        }
        self.expect('[')?;
        let mut toks = Vec::new();
        if !self.eat(']')? {
            loop {
                let at = self.at;
                toks.push((self.num_token()?, at));
                if self.eat(']')? {
                    break;
                }
                self.expect(',')?;
            }
        }
        if toks.len() != ty.numel() {
            return Err(self.err(format!(
                "constant of type {ty} needs {} values, found {}",
                ty.numel(),
                toks.len()
            )));
        }
        let shape = IxDyn(&ty.shape);
        let bad = |p: &Parser, at: usize, s: &str| {
            p.lex.err(at, format!("'{s}' is not a {} value", ty.dtype))
        };
        macro_rules! collect {
            ($f:expr) => {{
                let mut v = Vec::with_capacity(toks.len());
                for (s, at) in &toks {
                    v.push($f(s.as_str()).ok_or_else(|| bad(self, *at, s))?);
                }
                ArrayD::from_shape_vec(shape, v).map_err(|e| self.err(e.to_string()))?
            }};
        }
        Ok(match ty.dtype {
            DType::F32 => Tensor::F32(collect!(parse_f32)),
            DType::F16 => Tensor::F16(collect!(|s| parse_f32(s).map(f16::from_f32))),
            DType::BF16 => Tensor::BF16(collect!(|s| parse_f32(s).map(bf16::from_f32))),
            DType::I64 => Tensor::I64(collect!(|s: &str| s.parse::<i64>().ok())),
            DType::I32 => Tensor::I32(collect!(|s: &str| s.parse::<i32>().ok())),
            DType::Bool => Tensor::Bool(collect!(|s: &str| match s {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })),
        })
    }

    fn attr_value(&mut self) -> Result<AttrValue, Diagnostic> {
        match self.tok.clone() {
            Tok::Str(s) => {
                self.bump()?;
                Ok(AttrValue::Str(s))
            }
            Tok::Ident(k) if matches!(k.as_str(), "ints" | "floats" | "strings") => {
                self.bump()?;
                self.expect('[')?;
                self.expect(']')?;
                Ok(match k.as_str() {
                    "ints" => AttrValue::Ints(vec![]),
                    "floats" => AttrValue::Floats(vec![]),
                    _ => AttrValue::Strs(vec![]),
                })
            }
            Tok::Ident(k) if k != "inf" && k != "NaN" => {
                let t = DType::from_name(&k)
                    .ok_or_else(|| self.err(format!("unknown attribute value '{k}'")))?;
                self.bump()?;
                Ok(AttrValue::Type(t))
            }
            Tok::Punct('[') => {
                self.bump()?;
                let mut items = Vec::new();
                loop {
                    let at = self.at;
                    items.push((self.attr_value()?, at));
                    if self.eat(']')? {
                        break;
                    }
                    self.expect(',')?;
                }
                let first = items[0].0.kind();
                if let Some((v, at)) = items.iter().find(|(v, _)| v.kind() != first) {
                    return Err(self
                        .lex
                        .err(*at, format!("list mixes {first} and {} values", v.kind())));
                }
                Ok(match &items[0].0 {
                    AttrValue::Int(_) => AttrValue::Ints(
                        items
                            .into_iter()
                            .filter_map(|(v, _)| {
                                if let AttrValue::Int(i) = v {
                                    Some(i)
                                } else {
                                    None
                                }
                            })
                            .collect(),
                    ),
                    AttrValue::Float(_) => AttrValue::Floats(
                        items
                            .into_iter()
                            .filter_map(|(v, _)| {
                                if let AttrValue::Float(f) = v {
                                    Some(f)
                                } else {
                                    None
                                }
                            })
                            .collect(),
                    ),
                    AttrValue::Str(_) => AttrValue::Strs(
                        items
                            .into_iter()
                            .filter_map(|(v, _)| {
                                if let AttrValue::Str(s) = v {
                                    Some(s)
                                } else {
                                    None
                                }
                            })
                            .collect(),
                    ),
                    _ => {
                        return Err(self
                            .lex
                            .err(items[0].1, "lists hold ints, floats or strings"))
                    }
                })
            }
            _ => {
                let at = self.at;
                let s = self.num_token()?;
                if is_float_literal(&s) {
                    parse_f32(&s)
                        .map(AttrValue::Float)
                        .ok_or_else(|| self.lex.err(at, format!("bad float '{s}'")))
                } else {
                    s.parse::<i64>()
                        .map(AttrValue::Int)
                        .map_err(|_| self.lex.err(at, format!("bad integer '{s}'")))
                }
            }
        }
    }
}

fn is_float_literal(s: &str) -> bool {
    s.contains(['.', 'e', 'E']) || s.ends_with("inf") || s == "NaN"
}

fn parse_f32(s: &str) -> Option<f32> {
    match s {
        "NaN" => Some(f32::NAN),
        "inf" => Some(f32::INFINITY),
        "-inf" => Some(f32::NEG_INFINITY),
        _ => s
            .parse::<f32>()
            .ok()
            .filter(|_| !s.contains(char::is_alphabetic) || s.contains(['e', 'E'])),
    }
}

trait WithCode {
    fn with_code(self, c: Code) -> Self;
}

impl WithCode for Diagnostic {
    fn with_code(mut self, c: Code) -> Self {
        self.code = c;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::verify;

    fn sample() -> Graph {
        let mut g = Graph::new("t \"q\"");
        let x = g.add_input("X", TensorType::new(DType::F32, vec![2, 3]));
        let w = g.add_const(
            "W",
            Tensor::from_f32(
                DType::F32,
                &[3, 2],
                &[0.5, -1.0, 1e-7, 3.25, f32::INFINITY, 0.0],
            ),
        );
        let y = g
            .add_node_inferred("mm", Op::MatMul, Attrs::new(), vec![x, w], vec!["Y".into()])
            .unwrap();
        let yv = g.node(y).outputs[0];
        let attrs = Attrs::new()
            .with("axis", AttrValue::Int(0))
            .with("split", AttrValue::Ints(vec![1, 1]))
            .with("note", AttrValue::Strs(vec![]))
            .with("f", AttrValue::Floats(vec![1.0, -2.5e-9]));
        let s = g
            .add_node_inferred(
                "split\n0",
                Op::Split,
                attrs,
                vec![yv],
                vec!["a".into(), "b".into()],
            )
            .unwrap();
        let outs = g.node(s).outputs.clone();
        let c = g
            .add_node_inferred(
                "",
                Op::Cast,
                Attrs::new().with("to", AttrValue::Type(DType::BF16)),
                vec![outs[0]],
                vec!["c".into()],
            )
            .unwrap();
        g.outputs = vec![g.node(c).outputs[0], outs[1]];
        g
    }

    #[test]
    fn round_trip_is_exact() {
        let g = sample();
        verify(&g).unwrap();
        let text = print(&g);
        let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, g);
        assert_eq!(print(&back), text);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("graph \"g\" {\n  input %0 \"X\": float[2,\n}").unwrap_err();
        assert_eq!(e.code, Code::IrSyntax);
        assert_eq!(e.pos, Some(Pos { line: 3, col: 1 }));
    }

    #[test]
    fn sparse_ids_and_duplicates_are_rejected() {
        let e = parse("graph \"g\" {\n input %1 \"X\": float[]\n output %1\n}").unwrap_err();
        assert_eq!(e.code, Code::IrBadId);
        let e = parse(
            "graph \"g\" {\n input %0 \"X\": float[]\n input %0 \"Y\": float[]\n output %0\n}",
        )
        .unwrap_err();
        assert_eq!(e.code, Code::IrBadId);
    }

    #[test]
    fn elided_constants_do_not_parse() {
        let g = sample();
        let text = print_with(
            &g,
            PrintOptions {
                elide_above: Some(2),
            },
        );
        assert!(text.contains("<6 elements elided>"));
        assert_eq!(parse(&text).unwrap_err().code, Code::IrSyntax);
    }

    #[test]
    fn verifier_catches_use_before_def_and_bad_types() {
        let mut g = sample();
        g.nodes.swap(0, 1);
        let errs = verify(&g).unwrap_err();
        assert!(
            errs.0.iter().any(|d| d.code == Code::IrUseBeforeDef),
            "{errs}"
        );
        let mut g = sample();
        let y = g.nodes[0].outputs[0];
        g.values[y.index()].ty.shape = vec![9, 9];
        let errs = verify(&g).unwrap_err();
        assert!(errs.0.iter().any(|d| d.code == Code::IrTypeError), "{errs}");
    }
}
