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
//! * Constants list their elements in row-major order, in one of three forms the parser takes
//!   at any size: a decimal list (`[0.5, -1.0]`), `splat(0.02)` (every element the same) or
//!   `hex"0000003f000080bf"` (each element's little-endian bytes: 4 per float/int32, 2 per
//!   float16/bfloat16, 8 per int64, 1 per bool). The printer writes the decimal list up to
//!   [`COMPACT_ABOVE`] elements and, above it, `splat` when every element has the same bits,
//!   else `hex` — so the weights of a real model (MiniLM-L3: 17 M elements) print and parse in
//!   about a second where a decimal list took 15 s (and VGG-19's 144 M, two minutes). Floats
//!   are bit-exact in every form: the decimal form (Rust's shortest round-trip form of the
//!   value as f32) reads back to the same bits, and a constant holding a NaN other than the
//!   canonical quiet NaN prints as `hex`. [`identical`] is the equality the round
//!   trip guarantees (constants and float attributes compared by their bits).
//! * With [`PrintOptions::elide_above`] large constants print as `<N elements elided>` for
//!   human eyes; such text does not parse back.
//! * `#` starts a comment that runs to the end of the line.

use super::{AttrValue, Attrs, Graph, Node, NodeId, Op, TensorType, Value, ValueDef, ValueId};
use crate::diag::{Code, Diagnostic, Pos};
use crate::tensor::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;
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

/// Constants with more elements than this print as `splat(..)` or `hex".."` instead of a
/// decimal list (see the module doc).
pub const COMPACT_ABOVE: usize = 1024;

/// One element type of a constant: its decimal text and its raw bits (little-endian bytes).
trait Elem: Copy + Sized {
    /// Bytes per element in the `hex` form.
    const BYTES: usize;
    fn write_decimal(self, s: &mut String);
    fn parse_decimal(tok: &str) -> Option<Self>;
    /// The element's bits, in the low `BYTES` bytes.
    fn bits(self) -> u64;
    /// The element with these bits (`None` for a bool byte other than 0 or 1).
    fn from_bits(bits: u64) -> Option<Self>;
    /// Whether the decimal form reads back to the same bits (false only for NaNs other than
    /// the one `NaN` parses to).
    fn decimal_is_exact(self) -> bool {
        true
    }
}

impl Elem for f32 {
    const BYTES: usize = 4;
    fn write_decimal(self, s: &mut String) {
        fmt_f32(s, self)
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        parse_f32(tok)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(f32::from_bits(bits as u32))
    }
    fn decimal_is_exact(self) -> bool {
        !self.is_nan() || self.to_bits() == f32::NAN.to_bits()
    }
}

impl Elem for f16 {
    const BYTES: usize = 2;
    fn write_decimal(self, s: &mut String) {
        fmt_f32(s, self.to_f32())
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        parse_f32(tok).map(f16::from_f32)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(f16::from_bits(bits as u16))
    }
    fn decimal_is_exact(self) -> bool {
        !self.is_nan() || self.to_bits() == f16::from_f32(f32::NAN).to_bits()
    }
}

impl Elem for bf16 {
    const BYTES: usize = 2;
    fn write_decimal(self, s: &mut String) {
        fmt_f32(s, self.to_f32())
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        parse_f32(tok).map(bf16::from_f32)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bf16::from_bits(bits as u16))
    }
    fn decimal_is_exact(self) -> bool {
        !self.is_nan() || self.to_bits() == bf16::from_f32(f32::NAN).to_bits()
    }
}

impl Elem for i64 {
    const BYTES: usize = 8;
    fn write_decimal(self, s: &mut String) {
        let _ = write!(s, "{self}");
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        tok.parse().ok()
    }
    fn bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits as i64)
    }
}

impl Elem for i32 {
    const BYTES: usize = 4;
    fn write_decimal(self, s: &mut String) {
        let _ = write!(s, "{self}");
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        tok.parse().ok()
    }
    fn bits(self) -> u64 {
        self as u32 as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits as u32 as i32)
    }
}

impl Elem for bool {
    const BYTES: usize = 1;
    fn write_decimal(self, s: &mut String) {
        s.push_str(if self { "true" } else { "false" });
    }
    fn parse_decimal(tok: &str) -> Option<Self> {
        match tok {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
    fn bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        match bits {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

fn print_tensor_data(s: &mut String, t: &Tensor) {
    crate::with_array!(t, a => print_elems(s, a))
}

/// The elements of `a` in row-major order (borrowed when `a` is in standard layout).
fn row_major<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Prints a constant's elements in the form the module doc prescribes for its size and bits.
fn print_elems<T: Elem>(s: &mut String, a: &ArrayD<T>) {
    let v = row_major(a);
    let exact = v.iter().all(|x| x.decimal_is_exact());
    if exact && v.len() <= COMPACT_ABOVE {
        s.push('[');
        for (i, &x) in v.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            x.write_decimal(s);
        }
        s.push(']');
        return;
    }
    if let Some(&first) = v.first() {
        if exact && v.iter().all(|x| x.bits() == first.bits()) {
            s.push_str("splat(");
            first.write_decimal(s);
            s.push(')');
            return;
        }
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(v.len() * T::BYTES * 2);
    for x in v.iter() {
        let bits = x.bits();
        for byte in 0..T::BYTES {
            let b = (bits >> (8 * byte)) as u8;
            hex.extend_from_slice(&[DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]]);
        }
    }
    s.push_str("hex\"");
    s.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    s.push('"');
}

/// Whether two graphs are the same bit for bit — what `parse(&print(g))` guarantees. Like
/// `==`, except that constants and float attributes compare by their bits: a NaN equals a NaN
/// with the same bits, and `-0.0` differs from `0.0`.
pub fn identical(a: &Graph, b: &Graph) -> bool {
    a.name == b.name
        && a.inputs == b.inputs
        && a.outputs == b.outputs
        && a.values.len() == b.values.len()
        && a.values.iter().zip(&b.values).all(|(x, y)| {
            x.name == y.name
                && x.ty == y.ty
                && match (&x.def, &y.def) {
                    (ValueDef::Const(p), ValueDef::Const(q)) => same_bits(p, q),
                    (p, q) => p == q,
                }
        })
        && a.nodes.len() == b.nodes.len()
        && a.nodes.iter().zip(&b.nodes).all(|(x, y)| {
            x.name == y.name
                && x.op == y.op
                && x.inputs == y.inputs
                && x.outputs == y.outputs
                && x.attrs.len() == y.attrs.len()
                && x.attrs.0.iter().zip(&y.attrs.0).all(|((k, v), (l, w))| {
                    k == l
                        && match (v, w) {
                            (AttrValue::Float(p), AttrValue::Float(q)) => {
                                p.to_bits() == q.to_bits()
                            }
                            (AttrValue::Floats(p), AttrValue::Floats(q)) => {
                                p.len() == q.len()
                                    && p.iter().zip(q).all(|(x, y)| x.to_bits() == y.to_bits())
                            }
                            (v, w) => v == w,
                        }
                })
        })
}

/// Same dtype, shape and element bits.
fn same_bits(p: &Tensor, q: &Tensor) -> bool {
    fn eq<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> bool {
        a.shape() == b.shape()
            && row_major(a)
                .iter()
                .zip(row_major(b).iter())
                .all(|(x, y)| x.bits() == y.bits())
    }
    match (p, q) {
        (Tensor::F32(a), Tensor::F32(b)) => eq(a, b),
        (Tensor::F16(a), Tensor::F16(b)) => eq(a, b),
        (Tensor::BF16(a), Tensor::BF16(b)) => eq(a, b),
        (Tensor::I64(a), Tensor::I64(b)) => eq(a, b),
        (Tensor::I32(a), Tensor::I32(b)) => eq(a, b),
        (Tensor::Bool(a), Tensor::Bool(b)) => eq(a, b),
        _ => false,
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
        Ok(match ty.dtype {
            DType::F32 => Tensor::F32(self.elems(ty)?),
            DType::F16 => Tensor::F16(self.elems(ty)?),
            DType::BF16 => Tensor::BF16(self.elems(ty)?),
            DType::I64 => Tensor::I64(self.elems(ty)?),
            DType::I32 => Tensor::I32(self.elems(ty)?),
            DType::Bool => Tensor::Bool(self.elems(ty)?),
        })
    }

    /// A constant's elements in any of the three forms (decimal list, `splat`, `hex`).
    fn elems<T: Elem>(&mut self, ty: &TensorType) -> Result<ArrayD<T>, Diagnostic> {
        let at = self.at;
        let n = ty
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err(format!("constant of type {ty} has too many elements")))?;
        let bad = |p: &Parser, at: usize, s: &str| {
            p.lex.err(at, format!("'{s}' is not a {} value", ty.dtype))
        };
        let v: Vec<T> = match &self.tok {
            Tok::Punct('<') => return Err(self.err(
                "constant data was elided when printing; print the graph in full to parse it back",
            )),
            Tok::Ident(k) if k == "hex" => self.hex_elems(ty, n)?,
            Tok::Ident(k) if k == "splat" => {
                self.bump()?;
                self.expect('(')?;
                let at = self.at;
                let tok = self.num_token()?;
                let x = T::parse_decimal(&tok).ok_or_else(|| bad(self, at, &tok))?;
                self.expect(')')?;
                let mut v = reserve(n).map_err(|m| self.lex.err(at, m))?;
                v.resize(n, x);
                v
            }
            _ => {
                self.expect('[')?;
                let mut v = Vec::new();
                if !self.eat(']')? {
                    loop {
                        let at = self.at;
                        let tok = self.num_token()?;
                        v.push(T::parse_decimal(&tok).ok_or_else(|| bad(self, at, &tok))?);
                        if self.eat(']')? {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                if v.len() != n {
                    return Err(self.err(format!(
                        "constant of type {ty} needs {n} values, found {}",
                        v.len()
                    )));
                }
                v
            }
        };
        ArrayD::from_shape_vec(IxDyn(&ty.shape), v).map_err(|e| self.lex.err(at, e.to_string()))
    }

    /// The `hex"..."` form; the current token is `hex`. The digits are read straight from the
    /// source (no token per element), then lexing resumes after the closing quote.
    fn hex_elems<T: Elem>(&mut self, ty: &TensorType, n: usize) -> Result<Vec<T>, Diagnostic> {
        let b = self.lex.src.as_bytes();
        let open = self.lex.pos;
        if b.get(open) != Some(&b'"') {
            return Err(self.lex.err(open, "expected '\"' right after 'hex'"));
        }
        let start = open + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == b'"')
            .ok_or_else(|| self.lex.err(open, "unterminated hex string"))?;
        let digits = T::BYTES * 2;
        if n.checked_mul(digits) != Some(len) {
            return Err(self.lex.err(
                open,
                format!("constant of type {ty} needs {n} x {digits} hex digits, found {len}"),
            ));
        }
        let mut v = reserve(n).map_err(|m| self.lex.err(open, m))?;
        for (k, elem) in b[start..start + len].chunks_exact(digits).enumerate() {
            let mut bits = 0u64;
            for (j, pair) in elem.chunks_exact(2).enumerate() {
                let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
                if (hi | lo) > 15 {
                    let at = start + k * digits + 2 * j + usize::from(hi <= 15);
                    return Err(self.lex.err(at, "expected a hex digit"));
                }
                bits |= u64::from(hi << 4 | lo) << (8 * j);
            }
            let x = T::from_bits(bits).ok_or_else(|| {
                self.lex.err(
                    start + k * digits,
                    format!("{bits:#x} is not a {} value", ty.dtype),
                )
            })?;
            v.push(x);
        }
        self.lex.pos = start + len + 1;
        self.bump()?;
        Ok(v)
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

/// A vector with room for `n` elements, or a message when that much memory is not available
/// (a malformed type can claim any count; refusing beats aborting).
fn reserve<T>(n: usize) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate a constant of {n} elements"))?;
    Ok(v)
}

/// How many values a byte takes.
const BYTE_VALUES: usize = u8::MAX as usize + 1;

/// The value of each ASCII hex digit (either case); 255 for every other byte.
const HEX_VALUE: [u8; BYTE_VALUES] = {
    let mut t = [u8::MAX; BYTE_VALUES];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

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

    /// A graph of one constant per element type, each `n` elements long, holding `f(i)`.
    fn constants(n: usize, f: impl Fn(usize) -> f32) -> Graph {
        let mut g = Graph::new("c");
        let v: Vec<f32> = (0..n).map(f).collect();
        for dtype in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I64,
            DType::I32,
            DType::Bool,
        ] {
            let c = g.add_const(format!("{dtype}"), Tensor::from_f32(dtype, &[n], &v));
            g.outputs.push(c);
        }
        g
    }

    fn assert_round_trips(g: &Graph) -> String {
        let text = print(g);
        let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(identical(&back, g), "{text}");
        assert_eq!(print(&back), text);
        text
    }

    #[test]
    fn large_constants_print_as_splat_or_hex_and_round_trip() {
        let n = COMPACT_ABOVE + 1;
        let text = assert_round_trips(&constants(n, |_| 0.5));
        assert_eq!(text.matches("splat(").count(), 6, "{text}");
        let text = assert_round_trips(&constants(n, |i| (i % 7) as f32 - 3.0));
        assert_eq!(text.matches("hex\"").count(), 6, "{text}");
        // One element below the threshold stays a readable list.
        let text = assert_round_trips(&constants(COMPACT_ABOVE, |i| (i % 2) as f32));
        assert!(!text.contains("hex") && !text.contains("splat"), "{text}");
    }

    #[test]
    fn hex_is_little_endian_element_bytes() {
        let mut g = Graph::new("h");
        let v: Vec<f32> = (0..=COMPACT_ABOVE).map(|i| i as f32).collect();
        let c = g.add_const("x", Tensor::from_f32(DType::F32, &[v.len()], &v));
        g.outputs.push(c);
        // 0.0 = 00000000, 1.0 = 0x3f800000, 2.0 = 0x40000000.
        assert!(print(&g).contains("hex\"000000000000803f00000040"));
    }

    #[test]
    fn floats_are_bit_exact_even_for_nan_payloads_and_signed_zero() {
        let weird = [
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xffc0_0000),
            f32::NAN,
            -0.0,
            0.0,
            f32::NEG_INFINITY,
            f32::from_bits(1),
        ];
        let mut g = Graph::new("nan");
        let c = g.add_const("x", Tensor::from_f32(DType::F32, &[weird.len()], &weird));
        let h = g.add_const(
            "h",
            Tensor::F16(
                ndarray::ArrayD::from_shape_vec(
                    IxDyn(&[3]),
                    vec![f16::from_bits(0x7e01), f16::NEG_ZERO, f16::from_bits(1)],
                )
                .unwrap(),
            ),
        );
        g.outputs = vec![c, h];
        // Non-canonical NaNs force the exact hex form even for small constants.
        let text = assert_round_trips(&g);
        assert_eq!(text.matches("hex\"").count(), 2, "{text}");
        // `identical` sees the bits `==` cannot: NaN != NaN, and -0.0 == 0.0.
        assert_ne!(parse(&text).unwrap(), g);
        let zeros = |z: f32| {
            let mut g = Graph::new("z");
            let c = g.add_const("z", Tensor::from_f32(DType::F32, &[1], &[z]));
            g.outputs.push(c);
            g
        };
        assert_eq!(zeros(-0.0), zeros(0.0));
        assert!(!identical(&zeros(-0.0), &zeros(0.0)));
        assert_round_trips(&zeros(-0.0));
    }

    #[test]
    fn bad_compact_constants_are_errors_with_positions() {
        let src = |ty: &str, data: &str| {
            format!("graph \"g\" {{\n  const %0 \"c\": {ty} = {data}\n  output %0\n}}\n")
        };
        let cases = [
            // The bad digit, the opening quote, the bad bool byte, the missing quote, the bad
            // splat value, the unclosed quote.
            ("float[2]", "hex\"0000803f0000zz3f\"", (2, 44)),
            ("float[2]", "hex\"0000803f\"", (2, 31)),
            ("bool[2]", "hex\"0102\"", (2, 33)),
            ("float[2]", "hex \"0000803f0000803f\"", (2, 31)),
            ("int32[3]", "splat(1.5)", (2, 34)),
            ("float[2]", "hex\"0000803f", (2, 31)),
        ];
        for (ty, data, (line, col)) in cases {
            let e = parse(&src(ty, data)).unwrap_err();
            assert_eq!(e.code, Code::IrSyntax, "{ty} = {data}: {e}");
            assert_eq!(e.pos, Some(Pos { line, col }), "{ty} = {data}: {e}");
        }
        // A type claiming more elements than memory holds is refused, not an abort.
        let e = parse(&src("float[1000000000000000]", "splat(0.0)")).unwrap_err();
        assert_eq!(e.code, Code::IrSyntax, "{e}");
        let e = parse(&src(
            "float[4294967296, 4294967296, 4294967296]",
            "splat(0.0)",
        ))
        .unwrap_err();
        assert_eq!(e.code, Code::IrSyntax, "{e}");
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
