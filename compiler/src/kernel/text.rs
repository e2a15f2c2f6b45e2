//! The kernel IR's text form: a deterministic printer and a line-based parser, such that
//! `parse(print(p)) == p`. See the module doc of [`crate::kernel`] for the notation.
//!
//! ```text
//! input @x "x" fp32[8,784]
//! const @w bf16[784,10] = [0.5, -1.0, ...]
//! output @y "y" fp32[8,10]
//!
//! kernel "fc1" MatMul {
//!   sbuf %a bf16[128x784]
//!   psum %acc fp32[128x512]
//!   for $k in 0..7 {
//!     dma dst=%a[0,112]+0(8:1) src=@x[0,112;1]+112*$k(8:784)
//!     matmul dst=%acc[0,8]+0(10:1) moving=%w[0,112]+0(10:1) acc=after_first($k)
//!   }
//! }
//! ```

use super::*;
use crate::diag::{Code, Diagnostic, Pos};
use std::fmt::Write as _;
use tahoma_isa::asm::{quote, tokenize};
use tahoma_isa::asm_value::{parse_i64, parse_u64, AsmValue};

/// Options of the printer.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrintOptions {
    /// Constants with more values than this print as `<N values>` (which does not parse back).
    pub elide_above: Option<usize>,
}

fn shape_text(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// A view as text: `%buf[START,COUNT]+OFFSET(SIZE:STRIDE,...)`.
pub fn view_text(v: &View) -> String {
    let mut s = match &v.base {
        Base::Hbm(n) => format!("@{n}"),
        Base::Buf(n) => format!("%{n}"),
    };
    let _ = write!(s, "[{},{}", v.part_start, v.part_count);
    if v.part_stride != 0 {
        let _ = write!(s, ";{}", v.part_stride);
    }
    let _ = write!(s, "]+{}(", v.offset);
    let dims: Vec<String> = v.dims.iter().map(|(a, b)| format!("{a}:{b}")).collect();
    s.push_str(&dims.join(","));
    s.push(')');
    s
}

fn scalar_text(s: &ScalarArg) -> String {
    match s {
        ScalarArg::Imm(v) => {
            let mut o = String::new();
            v.write_asm(&mut o);
            o
        }
        ScalarArg::PerPartition(v) => view_text(v),
    }
}

fn f32_text(v: f32) -> String {
    let mut o = String::new();
    v.write_asm(&mut o);
    o
}

/// The op as `name field=value ...`.
pub fn op_text(op: &KOp) -> String {
    let v = view_text;
    match op {
        KOp::Dma { dst, src } => format!("dma dst={} src={}", v(dst), v(src)),
        KOp::DmaGather {
            dst,
            src,
            index,
            rows,
        } => format!(
            "dma_gather dst={} src={} index={} rows={rows}",
            v(dst),
            v(src),
            v(index)
        ),
        KOp::LoadStationary { src } => format!("load_stationary src={}", v(src)),
        KOp::Matmul { dst, moving, acc } => {
            let acc = match acc {
                Accumulate::Never => "never".to_string(),
                Accumulate::Always => "always".to_string(),
                Accumulate::AfterFirst(var) => format!("after_first(${var})"),
            };
            format!("matmul dst={} moving={} acc={acc}", v(dst), v(moving))
        }
        KOp::Activate { dst, src, func, scale, bias, acc } => {
            let mut s = format!("activate dst={} src={} func={} scale={} bias={}", v(dst), v(src), func.name(), scalar_text(scale), scalar_text(bias));
            if let Some(a) = acc {
                let _ = write!(s, " acc={}", v(a));
            }
            s
        }
        KOp::TensorTensor { dst, a, b, op } => format!("tensor_tensor dst={} a={} b={} op={}", v(dst), v(a), v(b), op.name()),
        KOp::TensorScalar { dst, src, op0, scalar0, op1, scalar1, reverse0, reverse1 } => format!(
            "tensor_scalar dst={} src={} op0={} scalar0={} op1={} scalar1={} reverse0={reverse0} reverse1={reverse1}",
            v(dst),
            v(src),
            op0.name(),
            scalar_text(scalar0),
            op1.name(),
            scalar_text(scalar1)
        ),
        KOp::Reduce { dst, src, op, axes, negate } => format!("reduce dst={} src={} op={} axes={axes} negate={negate}", v(dst), v(src), op.name()),
        KOp::Copy { dst, src } => format!("copy dst={} src={}", v(dst), v(src)),
        KOp::Memset { dst, value } => format!("memset dst={} value={}", v(dst), f32_text(*value)),
        KOp::Select { dst, pred, on_true, on_false } => {
            format!("select dst={} pred={} on_true={} on_false={}", v(dst), v(pred), v(on_true), v(on_false))
        }
        KOp::Iota { dst, base, part_step, steps } => {
            let steps: Vec<String> = steps.iter().map(i64::to_string).collect();
            format!("iota dst={} base={base} part_step={part_step} steps={}", v(dst), steps.join(","))
        }
        KOp::Transpose32 { dst, src } => format!("transpose32 dst={} src={}", v(dst), v(src)),
        KOp::Gpsimd { dst, srcs, kernel } => {
            let mut s = format!("gpsimd dst={}", v(dst));
            for (name, src) in GPSIMD_SRCS.iter().zip(srcs) {
                let _ = write!(s, " {name}={}", v(src));
            }
            let _ = write!(s, " kernel={kernel}");
            s
        }
    }
}

/// Field names of a `gpsimd` op's sources, in order.
const GPSIMD_SRCS: [&str; 3] = ["a", "b", "c"];

/// Indentation of CLIF lines inside `gpsimd_kernel N ops=K { ... }`.
const CLIF_INDENT: &str = "  ";

fn print_body(out: &mut String, body: &[Stmt], depth: usize) {
    let pad = "  ".repeat(depth);
    for s in body {
        match s {
            Stmt::Op(op) => {
                let _ = writeln!(out, "{pad}{}", op_text(op));
            }
            Stmt::Loop {
                var,
                start,
                end,
                body,
            } => {
                let _ = writeln!(out, "{pad}for ${var} in {start}..{end} {{");
                print_body(out, body, depth + 1);
                let _ = writeln!(out, "{pad}}}");
            }
        }
    }
}

/// Prints a program (all constants in full).
pub fn print(p: &KernelProgram) -> String {
    print_with(p, PrintOptions::default())
}

/// Prints a program.
pub fn print_with(p: &KernelProgram, opts: PrintOptions) -> String {
    let mut out = String::from("# tahoma kernel IR\n");
    for t in &p.tensors {
        let ty = format!("{}{}", t.dtype.name(), shape_text(&t.shape));
        match &t.kind {
            HbmKind::Input { io } => {
                let _ = writeln!(out, "input @{} {} {ty}", t.name, quote(io));
            }
            HbmKind::Output { io } => {
                let _ = writeln!(out, "output @{} {} {ty}", t.name, quote(io));
            }
            HbmKind::Scratch => {
                let _ = writeln!(out, "scratch @{} {ty}", t.name);
            }
            HbmKind::Const { values } => {
                if opts.elide_above.is_some_and(|n| values.len() > n) {
                    let _ = writeln!(out, "const @{} {ty} = <{} values>", t.name, values.len());
                } else {
                    let vals: Vec<String> = values.iter().map(|v| f32_text(*v)).collect();
                    let _ = writeln!(out, "const @{} {ty} = [{}]", t.name, vals.join(", "));
                }
            }
        }
    }
    for (i, g) in p.gpsimd.iter().enumerate() {
        let _ = writeln!(out, "\ngpsimd_kernel {i} ops={} {{", g.ops_per_elem);
        for l in g.clif.lines() {
            if l.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{CLIF_INDENT}{l}");
            }
        }
        out.push_str("}\n");
    }
    for k in &p.kernels {
        let _ = writeln!(out, "\nkernel {} {} {{", quote(&k.name), k.op);
        for b in &k.buffers {
            let _ = writeln!(
                out,
                "  {} %{} {}[{}x{}]",
                b.mem.name(),
                b.name,
                b.dtype.name(),
                b.partitions,
                b.free
            );
        }
        print_body(&mut out, &k.body, 1);
        out.push_str("}\n");
    }
    out
}

struct Parser<'a> {
    lines: Vec<(usize, Vec<(String, usize)>)>,
    at: usize,
    _src: &'a str,
}

fn err(line: usize, col: usize, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(Code::KernelSyntax, msg).at_pos(Pos {
        line: line as u32,
        col: col as u32,
    })
}

fn parse_expr(s: &str, line: usize, col: usize) -> Result<Expr, Diagnostic> {
    let mut e = Expr::default();
    let bad = || {
        err(
            line,
            col,
            format!("expected an affine expression like `128*$k+4`, found `{s}`"),
        )
    };
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let (sign, body) = match rest.as_bytes()[0] {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => (1, rest),
        };
        let end = body[1.min(body.len())..]
            .find(['+', '-'])
            .map_or(body.len(), |i| i + 1);
        let term = &body[..end];
        rest = &body[end..];
        if let Some((c, var)) = term.split_once('*') {
            let var = var.strip_prefix('$').ok_or_else(bad)?;
            let c = parse_i64(c).map_err(|_| bad())?;
            e = e.plus_var(var, sign * c);
        } else if let Some(var) = term.strip_prefix('$') {
            if var.is_empty() {
                return Err(bad());
            }
            e = e.plus_var(var, sign);
        } else {
            e = e.plus(sign * parse_i64(term).map_err(|_| bad())?);
        }
    }
    Ok(e)
}

fn parse_view(s: &str, line: usize, col: usize) -> Result<View, Diagnostic> {
    let bad = |m: &str| {
        err(
            line,
            col,
            format!("{m} in view `{s}` (expected `%buf[START,COUNT]+OFFSET(SIZE:STRIDE,...)`)"),
        )
    };
    let lb = s.find('[').ok_or_else(|| bad("missing `[`"))?;
    let base = match s.as_bytes().first() {
        Some(b'@') => Base::Hbm(s[1..lb].to_string()),
        Some(b'%') => Base::Buf(s[1..lb].to_string()),
        _ => return Err(bad("a view starts with `%` or `@`")),
    };
    let rb = s.find(']').ok_or_else(|| bad("missing `]`"))?;
    let parts = &s[lb + 1..rb];
    let (parts, stride) = match parts.split_once(';') {
        Some((p, st)) => (p, parse_i64(st).map_err(|m| bad(&m))?),
        None => (parts, 0),
    };
    let (ps, pc) = parts
        .split_once(',')
        .ok_or_else(|| bad("missing `,` between partition start and count"))?;
    let after = s[rb + 1..]
        .strip_prefix('+')
        .ok_or_else(|| bad("missing `+OFFSET`"))?;
    let lp = after.find('(').ok_or_else(|| bad("missing `(`"))?;
    let dims_text = after[lp..]
        .strip_prefix('(')
        .and_then(|d| d.strip_suffix(')'))
        .ok_or_else(|| bad("missing `)`"))?;
    let mut dims = Vec::new();
    for d in dims_text.split(',').filter(|d| !d.is_empty()) {
        let (a, b) = d
            .split_once(':')
            .ok_or_else(|| bad("a dim is SIZE:STRIDE"))?;
        dims.push((
            parse_u64(a).map_err(|m| bad(&m))?,
            parse_i64(b).map_err(|m| bad(&m))?,
        ));
    }
    Ok(View {
        base,
        part_start: parse_expr(ps, line, col)?,
        part_count: parse_u64(pc).map_err(|m| bad(&m))?,
        part_stride: stride,
        offset: parse_expr(&after[..lp], line, col)?,
        dims,
    })
}

fn parse_scalar(s: &str, line: usize, col: usize) -> Result<ScalarArg, Diagnostic> {
    if s.starts_with(['%', '@']) {
        Ok(ScalarArg::PerPartition(parse_view(s, line, col)?))
    } else {
        f32::parse_asm(s)
            .map(ScalarArg::Imm)
            .map_err(|m| err(line, col, m))
    }
}

/// The `key=value` fields of an op line.
struct Fields {
    line: usize,
    op_col: usize,
    items: Vec<(String, String, usize)>,
}

impl Fields {
    fn raw(&mut self, key: &str) -> Result<(String, usize), Diagnostic> {
        match self.items.iter().position(|i| i.0 == key) {
            Some(i) => {
                let (_, v, c) = self.items.remove(i);
                Ok((v, c))
            }
            None => Err(err(
                self.line,
                self.op_col,
                format!("missing field `{key}`"),
            )),
        }
    }
    fn opt(&mut self, key: &str) -> Option<(String, usize)> {
        self.items.iter().position(|i| i.0 == key).map(|i| {
            let (_, v, c) = self.items.remove(i);
            (v, c)
        })
    }
    fn view(&mut self, key: &str) -> Result<View, Diagnostic> {
        let (v, c) = self.raw(key)?;
        parse_view(&v, self.line, c)
    }
    fn scalar(&mut self, key: &str) -> Result<ScalarArg, Diagnostic> {
        let (v, c) = self.raw(key)?;
        parse_scalar(&v, self.line, c)
    }
    fn value<T: AsmValue>(&mut self, key: &str) -> Result<T, Diagnostic> {
        let (v, c) = self.raw(key)?;
        T::parse_asm(&v).map_err(|m| err(self.line, c, format!("field `{key}`: {m}")))
    }
    fn finish(self) -> Result<(), Diagnostic> {
        match self.items.first() {
            Some((k, _, c)) => Err(err(self.line, *c, format!("unknown field `{k}`"))),
            None => Ok(()),
        }
    }
}

fn parse_op(toks: &[(String, usize)], line: usize) -> Result<KOp, Diagnostic> {
    let (name, op_col) = (&toks[0].0, toks[0].1);
    let mut items = Vec::new();
    for (t, c) in &toks[1..] {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| err(line, *c, format!("expected `field=value`, found `{t}`")))?;
        items.push((k.to_string(), v.to_string(), c + k.len() + 1));
    }
    let mut f = Fields {
        line,
        op_col,
        items,
    };
    let op = match name.as_str() {
        "dma" => KOp::Dma {
            dst: f.view("dst")?,
            src: f.view("src")?,
        },
        "dma_gather" => KOp::DmaGather {
            dst: f.view("dst")?,
            src: f.view("src")?,
            index: f.view("index")?,
            rows: f.value("rows")?,
        },
        "load_stationary" => KOp::LoadStationary {
            src: f.view("src")?,
        },
        "matmul" => {
            let dst = f.view("dst")?;
            let moving = f.view("moving")?;
            let (a, c) = f.raw("acc")?;
            let acc = match a.as_str() {
                "never" => Accumulate::Never,
                "always" => Accumulate::Always,
                _ => match a
                    .strip_prefix("after_first($")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    Some(var) if !var.is_empty() => Accumulate::AfterFirst(var.to_string()),
                    _ => {
                        return Err(err(
                            line,
                            c,
                            format!("acc is never, always or after_first($var), not `{a}`"),
                        ))
                    }
                },
            };
            KOp::Matmul { dst, moving, acc }
        }
        "activate" => {
            let (dst, src, func) = (f.view("dst")?, f.view("src")?, f.value::<Act>("func")?);
            let (scale, bias) = (f.scalar("scale")?, f.scalar("bias")?);
            let acc = match f.opt("acc") {
                Some((v, c)) => Some(parse_view(&v, line, c)?),
                None => None,
            };
            KOp::Activate {
                dst,
                src,
                func,
                scale,
                bias,
                acc,
            }
        }
        "tensor_tensor" => KOp::TensorTensor {
            dst: f.view("dst")?,
            a: f.view("a")?,
            b: f.view("b")?,
            op: f.value("op")?,
        },
        "tensor_scalar" => KOp::TensorScalar {
            dst: f.view("dst")?,
            src: f.view("src")?,
            op0: f.value("op0")?,
            scalar0: f.scalar("scalar0")?,
            op1: f.value("op1")?,
            scalar1: f.scalar("scalar1")?,
            reverse0: f.value("reverse0")?,
            reverse1: f.value("reverse1")?,
        },
        "reduce" => KOp::Reduce {
            dst: f.view("dst")?,
            src: f.view("src")?,
            op: f.value("op")?,
            axes: f.value("axes")?,
            negate: f.value("negate")?,
        },
        "copy" => KOp::Copy {
            dst: f.view("dst")?,
            src: f.view("src")?,
        },
        "memset" => KOp::Memset {
            dst: f.view("dst")?,
            value: f.value("value")?,
        },
        "select" => KOp::Select {
            dst: f.view("dst")?,
            pred: f.view("pred")?,
            on_true: f.view("on_true")?,
            on_false: f.view("on_false")?,
        },
        "iota" => {
            let (dst, base, part_step) = (f.view("dst")?, f.value("base")?, f.value("part_step")?);
            let (st, c) = f.raw("steps")?;
            let steps = st
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| parse_i64(s).map_err(|m| err(line, c, m)))
                .collect::<Result<_, _>>()?;
            KOp::Iota {
                dst,
                base,
                part_step,
                steps,
            }
        }
        "transpose32" => KOp::Transpose32 {
            dst: f.view("dst")?,
            src: f.view("src")?,
        },
        "gpsimd" => {
            let dst = f.view("dst")?;
            let mut srcs = Vec::new();
            for name in GPSIMD_SRCS {
                match f.opt(name) {
                    Some((v, c)) => srcs.push(parse_view(&v, line, c)?),
                    None => break,
                }
            }
            KOp::Gpsimd {
                dst,
                srcs,
                kernel: f.value::<u64>("kernel").and_then(|k| {
                    u32::try_from(k).map_err(|_| err(line, op_col, "kernel index too large"))
                })?,
            }
        }
        other => return Err(err(line, op_col, format!("unknown kernel op `{other}`"))),
    };
    f.finish()?;
    Ok(op)
}

fn parse_hbm_type(tok: &(String, usize), line: usize) -> Result<(Dtype, Vec<u64>), Diagnostic> {
    let (t, c) = tok;
    let lb = t
        .find('[')
        .ok_or_else(|| err(line, *c, format!("expected DTYPE[D0,D1,...], found `{t}`")))?;
    let dtype = Dtype::from_name(&t[..lb])
        .ok_or_else(|| err(line, *c, format!("unknown dtype `{}`", &t[..lb])))?;
    let inner = t[lb + 1..]
        .strip_suffix(']')
        .ok_or_else(|| err(line, *c, "missing `]`"))?;
    let shape = inner
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| parse_u64(d).map_err(|m| err(line, *c, m)))
        .collect::<Result<_, _>>()?;
    Ok((dtype, shape))
}

fn ident(tok: Option<&(String, usize)>, sigil: char, line: usize) -> Result<String, Diagnostic> {
    match tok {
        Some((t, c)) => match t.strip_prefix(sigil) {
            Some(n)
                if !n.is_empty()
                    && n.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.') =>
            {
                Ok(n.to_string())
            }
            _ => Err(err(
                line,
                *c,
                format!("expected a name `{sigil}name`, found `{t}`"),
            )),
        },
        None => Err(err(line, 1, format!("missing `{sigil}name`"))),
    }
}

fn quoted(tok: Option<&(String, usize)>, line: usize) -> Result<String, Diagnostic> {
    match tok {
        Some((t, _)) if t.starts_with('"') => Ok(t[1..].to_string()),
        Some((t, c)) => Err(err(
            line,
            *c,
            format!("expected a quoted name, found `{t}`"),
        )),
        None => Err(err(line, 1, "missing a quoted name")),
    }
}

impl Parser<'_> {
    fn next(&mut self) -> Option<(usize, Vec<(String, usize)>)> {
        let l = self.lines.get(self.at).cloned();
        self.at += 1;
        l
    }

    fn body(&mut self, open_line: usize) -> Result<Vec<Stmt>, Diagnostic> {
        let mut body = Vec::new();
        loop {
            let Some((line, toks)) = self.next() else {
                return Err(err(open_line, 1, "missing `}`"));
            };
            let head = toks[0].0.as_str();
            if head == "}" {
                return Ok(body);
            }
            if head == "for" {
                let var = ident(toks.get(1), '$', line)?;
                if toks.get(2).map(|t| t.0.as_str()) != Some("in")
                    || toks.get(4).map(|t| t.0.as_str()) != Some("{")
                {
                    return Err(err(line, toks[0].1, "expected `for $var in START..END {`"));
                }
                let (range, c) = &toks[3];
                let (a, b) = range
                    .split_once("..")
                    .ok_or_else(|| err(line, *c, "expected START..END"))?;
                let start = parse_i64(a).map_err(|m| err(line, *c, m))?;
                let end = parse_i64(b).map_err(|m| err(line, *c, m))?;
                let inner = self.body(line)?;
                body.push(Stmt::Loop {
                    var,
                    start,
                    end,
                    body: inner,
                });
            } else {
                body.push(Stmt::Op(parse_op(&toks, line)?));
            }
        }
    }
}

/// Takes the `gpsimd_kernel N ops=K {` ... `}` blocks out of the text (their CLIF is not
/// tokenized); the other lines keep their numbers.
/// Numbered source lines (1-based).
type Lines<'a> = Vec<(usize, &'a str)>;

fn take_gpsimd_kernels(src: &str) -> Result<(Vec<GpsimdKernel>, Lines<'_>), Diagnostic> {
    let mut table = Vec::new();
    let mut rest = Vec::new();
    let mut open: Option<(usize, u32, String)> = None;
    for (i, l) in src.lines().enumerate() {
        let line = i + 1;
        if let Some((_, ops, clif)) = &mut open {
            if l == "}" {
                table.push(GpsimdKernel {
                    ops_per_elem: *ops,
                    clif: std::mem::take(clif),
                });
                open = None;
            } else {
                clif.push_str(l.strip_prefix(CLIF_INDENT).unwrap_or(l.trim_start()));
                clif.push('\n');
            }
            continue;
        }
        let t = l.trim();
        let Some(head) = t.strip_prefix("gpsimd_kernel ") else {
            rest.push((line, l));
            continue;
        };
        let bad = || {
            err(
                line,
                1,
                format!("expected `gpsimd_kernel {} ops=K {{`", table.len()),
            )
        };
        let parts: Vec<&str> = head.split_whitespace().collect();
        let [idx, ops, "{"] = parts[..] else {
            return Err(bad());
        };
        if parse_u64(idx).ok() != Some(table.len() as u64) {
            return Err(bad());
        }
        let ops = ops
            .strip_prefix("ops=")
            .and_then(|o| parse_u64(o).ok())
            .and_then(|o| u32::try_from(o).ok())
            .ok_or_else(bad)?;
        open = Some((line, ops, String::new()));
    }
    if let Some((line, _, _)) = open {
        return Err(err(
            line,
            1,
            "`gpsimd_kernel` block without its closing `}`",
        ));
    }
    Ok((table, rest))
}

/// Parses kernel IR text.
pub fn parse(src: &str) -> Result<KernelProgram, Diagnostic> {
    let (gpsimd, src_lines) = take_gpsimd_kernels(src)?;
    let mut lines = Vec::new();
    for (i, l) in src_lines.into_iter().map(|(n, l)| (n - 1, l)) {
        let toks = tokenize(l, i + 1).map_err(|e| match e {
            tahoma_isa::asm::AsmError::Syntax {
                line,
                column,
                message,
            } => err(line, column, message),
            other => err(i + 1, 1, other.to_string()),
        })?;
        if !toks.is_empty() {
            lines.push((i + 1, toks));
        }
    }
    let mut p = Parser {
        lines,
        at: 0,
        _src: src,
    };
    let mut prog = KernelProgram {
        gpsimd,
        ..KernelProgram::default()
    };
    while let Some((line, toks)) = p.next() {
        let head = toks[0].0.as_str();
        match head {
            "input" | "output" => {
                let name = ident(toks.get(1), '@', line)?;
                let io = quoted(toks.get(2), line)?;
                let (dtype, shape) = parse_hbm_type(
                    toks.get(3).ok_or_else(|| err(line, 1, "missing type"))?,
                    line,
                )?;
                let kind = if head == "input" {
                    HbmKind::Input { io }
                } else {
                    HbmKind::Output { io }
                };
                prog.tensors.push(HbmTensor {
                    name,
                    dtype,
                    shape,
                    kind,
                });
            }
            "scratch" => {
                let name = ident(toks.get(1), '@', line)?;
                let (dtype, shape) = parse_hbm_type(
                    toks.get(2).ok_or_else(|| err(line, 1, "missing type"))?,
                    line,
                )?;
                prog.tensors.push(HbmTensor {
                    name,
                    dtype,
                    shape,
                    kind: HbmKind::Scratch,
                });
            }
            "const" => {
                let name = ident(toks.get(1), '@', line)?;
                let (dtype, shape) = parse_hbm_type(
                    toks.get(2).ok_or_else(|| err(line, 1, "missing type"))?,
                    line,
                )?;
                if toks.get(3).map(|t| t.0.as_str()) != Some("=") {
                    return Err(err(line, toks[0].1, "expected `= [values]`"));
                }
                let rest: String = toks[4..]
                    .iter()
                    .map(|t| t.0.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let col = toks.get(4).map_or(1, |t| t.1);
                let inner = rest
                    .trim()
                    .strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .ok_or_else(|| err(line, col, "constant values are `[v0, v1, ...]` (an elided `<N values>` dump does not parse back)"))?;
                let values = inner
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| f32::parse_asm(s).map_err(|m| err(line, col, m)))
                    .collect::<Result<Vec<f32>, _>>()?;
                let n: u64 = shape.iter().product();
                if values.len() as u64 != n {
                    return Err(err(
                        line,
                        col,
                        format!("shape {shape:?} holds {n} values, {} given", values.len()),
                    ));
                }
                prog.tensors.push(HbmTensor {
                    name,
                    dtype,
                    shape,
                    kind: HbmKind::Const { values },
                });
            }
            "kernel" => {
                let name = quoted(toks.get(1), line)?;
                let op = toks
                    .get(2)
                    .map(|t| t.0.clone())
                    .ok_or_else(|| err(line, 1, "missing op name"))?;
                if toks.get(3).map(|t| t.0.as_str()) != Some("{") {
                    return Err(err(line, toks[0].1, "expected `kernel \"name\" Op {`"));
                }
                let mut buffers = Vec::new();
                while let Some((bl, bt)) = p.lines.get(p.at).cloned() {
                    let mem = match bt[0].0.as_str() {
                        "sbuf" => Mem::Sbuf,
                        "psum" => Mem::Psum,
                        _ => break,
                    };
                    p.at += 1;
                    let bname = ident(bt.get(1), '%', bl)?;
                    let (t, c) = bt.get(2).ok_or_else(|| err(bl, 1, "missing buffer type"))?;
                    let bad = || {
                        err(
                            bl,
                            *c,
                            format!("expected DTYPE[PARTITIONSxFREE], found `{t}`"),
                        )
                    };
                    let lb = t.find('[').ok_or_else(bad)?;
                    let dtype = Dtype::from_name(&t[..lb]).ok_or_else(bad)?;
                    let (pp, ff) = t[lb + 1..]
                        .strip_suffix(']')
                        .and_then(|r| r.split_once('x'))
                        .ok_or_else(bad)?;
                    buffers.push(Buffer {
                        name: bname,
                        mem,
                        dtype,
                        partitions: parse_u64(pp).map_err(|_| bad())?,
                        free: parse_u64(ff).map_err(|_| bad())?,
                    });
                }
                let body = p.body(line)?;
                prog.kernels.push(Kernel {
                    name,
                    op,
                    buffers,
                    body,
                });
            }
            other => {
                return Err(err(
                    line,
                    toks[0].1,
                    format!("unknown declaration `{other}`"),
                ))
            }
        }
    }
    Ok(prog)
}
