//! The assembly text of whole programs: the disassembler's output and the assembler's input,
//! one format, so `parse(print(p)) == p` (except constant data too large to show; see below).
//!
//! ```text
//! # comment
//! .input  "x" bf16 [128,512] @0x0
//! .output "y" fp32 [128,128] @0x20000
//! .const  "b" fp32 [2] @0x30000 = [0.5, -1.0]      # values, converted to the dtype
//! .const  "w" @0x40000 hex=0000803f                 # or raw bytes
//! .kernel 0 ops=3                                   # GpSimd kernel table entry 0: its
//!     function %k0(f32) -> f32 system_v {           # Cranelift IR, indented 4 spaces,
//!     block0(v0: f32):                              # up to `.endkernel` (text in between
//!         v1 = fmul v0, v0                          # is CLIF, not assembly: `;` comments)
//!         return v1
//!     }
//! .endkernel
//! .stream tensor                                    # tensor | vector | scalar | gpsimd | dmaN
//! .op "matmul0"                                     # provenance of the lines that follow
//!     MATMUL moving=sbuf:bf16[0,128]@0x0(512:1) dst=psum:fp32[0,128]@0x0(512:1) accumulate=false wait(s1>=1) signal(s2+=1)
//!     END
//! ```
//!
//! The disassembler prints constants larger than [`INLINE_CONST_LIMIT`] bytes as a summary
//! line that the assembler refuses (the data lives only in the `.tbin`).

use crate::asm_value::{parse_u64, AsmValue, FieldMap};
use crate::check::check_program;
use crate::program::{ConstImage, GpsimdKernel, IoEntry, IoKind, Program, Stream, StreamId};
use crate::{Dtype, Header, Inst, Opcode};
use std::fmt::{self, Write as _};

/// Indentation of kernel text lines in assembly (removed again by the assembler).
const KERNEL_INDENT: &str = "    ";

/// Constants up to this many bytes are printed in full by the disassembler.
pub const INLINE_CONST_LIMIT: usize = 4096;

/// One instruction as a line of assembly (without indentation).
pub fn format_inst(inst: &Inst) -> String {
    let mut s = inst.opcode().name().to_string();
    inst.write_fields(&mut s);
    inst.sync().write_asm(&mut s);
    s
}

/// Quotes a name for assembly and IR text (`"..."` with `\"`, `\\`, `\n`, `\u{..}` escapes).
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints a program as assembly text. With `full`, constants of any size are printed.
pub fn print_program(p: &Program, full: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tahoma program, format {}.{}",
        crate::program::VERSION_MAJOR,
        crate::program::VERSION_MINOR
    );
    for e in &p.io {
        let kind = match e.kind {
            IoKind::Input => ".input",
            IoKind::Output => ".output",
        };
        let dims: Vec<String> = e.shape.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "{kind} {} {} [{}] @{:#x}",
            quote(&e.name),
            e.dtype.name(),
            dims.join(","),
            e.addr
        );
    }
    for c in &p.consts {
        if full || c.bytes.len() <= INLINE_CONST_LIMIT {
            let _ = writeln!(
                out,
                ".const {} @{:#x} hex={}",
                quote(&c.name),
                c.addr,
                hex(&c.bytes)
            );
        } else {
            let _ = writeln!(
                out,
                ".const {} @{:#x} bytes={} # data not shown",
                quote(&c.name),
                c.addr,
                c.bytes.len()
            );
        }
    }
    for (i, k) in p.kernels.iter().enumerate() {
        let _ = writeln!(out, ".kernel {i} ops={}", k.ops_per_elem);
        for l in k.clif.lines() {
            if l.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{KERNEL_INDENT}{l}");
            }
        }
        out.push_str(".endkernel\n");
    }
    for s in &p.streams {
        let _ = writeln!(out, "\n.stream {}", s.id);
        let mut cur: Option<u32> = None;
        for (pc, inst) in s.insts.iter().enumerate() {
            let op = s.op_ids.get(pc).copied().flatten();
            if op != cur {
                match op.and_then(|i| p.ops.get(i as usize)) {
                    Some(name) => {
                        let _ = writeln!(out, ".op {}", quote(name));
                    }
                    None => out.push_str(".op -\n"),
                }
                cur = op;
            }
            let _ = writeln!(out, "    {}", format_inst(inst));
        }
    }
    out
}

/// Why assembly text was refused; every variant points at a line (and column where known).
#[derive(Clone, Debug, PartialEq)]
pub enum AsmError {
    /// Malformed text.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A field value that does not parse or does not fit.
    Field {
        line: usize,
        column: usize,
        message: String,
    },
    /// A well-formed instruction that breaks a legality rule.
    Illegal {
        line: usize,
        violation: Box<crate::check::ProgramViolation>,
    },
}

impl AsmError {
    pub fn code(&self) -> &'static str {
        match self {
            AsmError::Syntax { .. } => "E2101",
            AsmError::Field { .. } => "E2102",
            AsmError::Illegal { violation, .. } => violation.violation.code(),
        }
    }
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsmError::Syntax {
                line,
                column,
                message,
            } => write!(f, "{line}:{column}: syntax error: {message}"),
            AsmError::Field {
                line,
                column,
                message,
            } => write!(f, "{line}:{column}: {message}"),
            AsmError::Illegal { line, violation } => write!(f, "{line}: {violation}"),
        }
    }
}

impl std::error::Error for AsmError {}

/// Splits a line into tokens with their 1-based columns; quoted strings are one token
/// (returned unescaped, with a leading `"` kept as a marker).
pub fn tokenize(line: &str, lineno: usize) -> Result<Vec<(String, usize)>, AsmError> {
    let mut toks = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        // `chars` holds the line's characters in order, so the column is the index (1-based).
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            break;
        } else if c == '"' {
            let mut s = String::from("\"");
            i += 1;
            loop {
                let Some(&(_, c)) = chars.get(i) else {
                    return Err(AsmError::Syntax {
                        line: lineno,
                        column: col,
                        message: "unterminated string".into(),
                    });
                };
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let Some(&(_, e)) = chars.get(i) else {
                            return Err(AsmError::Syntax {
                                line: lineno,
                                column: col,
                                message: "unterminated escape".into(),
                            });
                        };
                        i += 1;
                        match e {
                            'n' => s.push('\n'),
                            '"' | '\\' => s.push(e),
                            'u' => {
                                let rest: String = chars[i..].iter().map(|x| x.1).collect();
                                let close = rest.find('}').filter(|_| rest.starts_with('{'));
                                let ch = close
                                    .and_then(|e| u32::from_str_radix(&rest[1..e], 16).ok())
                                    .and_then(char::from_u32);
                                match (close, ch) {
                                    (Some(e), Some(ch)) => {
                                        s.push(ch);
                                        i += rest[..=e].chars().count();
                                    }
                                    _ => {
                                        return Err(AsmError::Syntax {
                                            line: lineno,
                                            column: col,
                                            message: "bad \\u{...} escape".into(),
                                        })
                                    }
                                }
                            }
                            other => {
                                return Err(AsmError::Syntax {
                                    line: lineno,
                                    column: col,
                                    message: format!("unknown escape \\{other}"),
                                })
                            }
                        }
                    }
                    c => s.push(c),
                }
            }
            toks.push((s, col));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].1.is_whitespace() && chars[i].1 != '#' {
                i += 1;
            }
            let end = chars.get(i).map_or(line.len(), |c| c.0);
            toks.push((line[chars[start].0..end].to_string(), col));
        }
    }
    Ok(toks)
}

struct LineCtx {
    line: usize,
}

impl LineCtx {
    fn syntax(&self, column: usize, message: impl Into<String>) -> AsmError {
        AsmError::Syntax {
            line: self.line,
            column,
            message: message.into(),
        }
    }
}

fn parse_name(cx: &LineCtx, tok: Option<&(String, usize)>, what: &str) -> Result<String, AsmError> {
    match tok {
        Some((t, _)) if t.starts_with('"') => Ok(t[1..].to_string()),
        Some((t, c)) => Err(cx.syntax(*c, format!("expected a quoted {what}, found `{t}`"))),
        None => Err(cx.syntax(1, format!("missing {what}"))),
    }
}

fn parse_addr(cx: &LineCtx, tok: Option<&(String, usize)>) -> Result<u64, AsmError> {
    match tok {
        Some((t, c)) => match t.strip_prefix('@') {
            Some(a) => parse_u64(a).map_err(|m| cx.syntax(*c, m)),
            None => Err(cx.syntax(*c, format!("expected an address `@0x...`, found `{t}`"))),
        },
        None => Err(cx.syntax(1, "missing address `@0x...`")),
    }
}

fn parse_dtype(cx: &LineCtx, tok: Option<&(String, usize)>) -> Result<Dtype, AsmError> {
    match tok {
        Some((t, c)) => {
            Dtype::from_name(t).ok_or_else(|| cx.syntax(*c, format!("unknown dtype `{t}`")))
        }
        None => Err(cx.syntax(1, "missing dtype")),
    }
}

/// Parses `[a,b,...]` (possibly split over several tokens) starting at token `i`; returns the
/// items and the index after the closing bracket.
fn parse_list(
    cx: &LineCtx,
    toks: &[(String, usize)],
    mut i: usize,
) -> Result<(Vec<(String, usize)>, usize), AsmError> {
    let Some((first, col)) = toks.get(i) else {
        return Err(cx.syntax(1, "missing `[...]` list"));
    };
    if !first.starts_with('[') {
        return Err(cx.syntax(*col, format!("expected `[`, found `{first}`")));
    }
    let mut text = String::new();
    let col = *col;
    loop {
        let Some((t, _)) = toks.get(i) else {
            return Err(cx.syntax(col, "unterminated `[...]` list"));
        };
        text.push_str(t);
        text.push(' ');
        i += 1;
        if t.ends_with(']') {
            break;
        }
    }
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let items = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (s.to_string(), col))
        .collect();
    Ok((items, i))
}

fn parse_sync(cx: &LineCtx, tok: &str, col: usize, h: &mut Header) -> Result<bool, AsmError> {
    let bad = |m: String| AsmError::Field {
        line: cx.line,
        column: col,
        message: m,
    };
    if let Some(body) = tok.strip_prefix("wait(s").and_then(|r| r.strip_suffix(')')) {
        let (s, v) = body
            .split_once(">=")
            .ok_or_else(|| bad(format!("expected wait(sN>=V), found `{tok}`")))?;
        let (s, v) = (parse_u64(s).map_err(&bad)?, parse_u64(v).map_err(&bad)?);
        h.add_wait(s, v).map_err(bad)?;
        return Ok(true);
    }
    if let Some(body) = tok
        .strip_prefix("signal(s")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (s, k) = body
            .split_once("+=")
            .ok_or_else(|| bad(format!("expected signal(sN+=K), found `{tok}`")))?;
        if h.signal().is_some() {
            return Err(bad("an instruction signals at most one semaphore".into()));
        }
        h.signal_sem = parse_u64(s).map_err(&bad)?;
        h.signal_inc = parse_u64(k).map_err(&bad)?;
        return Ok(true);
    }
    Ok(false)
}

/// Parses one instruction line's tokens.
fn parse_inst(cx: &LineCtx, toks: &[(String, usize)]) -> Result<Inst, AsmError> {
    let (name, col) = &toks[0];
    let op = Opcode::from_name(name)
        .ok_or_else(|| cx.syntax(*col, format!("unknown instruction `{name}`")))?;
    let mut sync = Header::default();
    let mut fields = FieldMap::default();
    for (t, c) in &toks[1..] {
        if parse_sync(cx, t, *c, &mut sync)? {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(cx.syntax(
                *c,
                format!("expected `field=value`, `wait(...)` or `signal(...)`, found `{t}`"),
            ));
        };
        fields.push(k, v, c + k.len() + 1);
    }
    let columns = fields.clone();
    let inst = Inst::parse_fields(op, &mut fields, sync).map_err(|e| AsmError::Field {
        line: cx.line,
        column: columns.column(&e.field).unwrap_or(*col),
        message: format!("{}: field `{}`: {}", op.name(), e.field, e.message),
    })?;
    if let Some(extra) = fields.leftover().first() {
        return Err(AsmError::Field {
            line: cx.line,
            column: fields.column(extra).unwrap_or(*col),
            message: format!("{} has no field `{extra}`", op.name()),
        });
    }
    // Fields must fit their bits: encode once to find out.
    inst.encode(&mut Vec::new()).map_err(|e| AsmError::Field {
        line: cx.line,
        column: columns
            .column(e.field.split('.').next().unwrap_or(""))
            .unwrap_or(*col),
        message: format!("{}: {e}", op.name()),
    })?;
    Ok(inst)
}

fn parse_const(cx: &LineCtx, toks: &[(String, usize)]) -> Result<ConstImage, AsmError> {
    let name = parse_name(cx, toks.get(1), "constant name")?;
    if toks.get(2).is_some_and(|t| t.0.starts_with('@')) {
        let addr = parse_addr(cx, toks.get(2))?;
        let Some((t, c)) = toks.get(3) else {
            return Err(cx.syntax(1, "missing `hex=...` data"));
        };
        if t.starts_with("bytes=") {
            return Err(cx.syntax(*c, format!("constant `{name}` was disassembled without its data; disassemble with --full or assemble from source")));
        }
        let h = t
            .strip_prefix("hex=")
            .ok_or_else(|| cx.syntax(*c, format!("expected `hex=...`, found `{t}`")))?;
        if h.len() % 2 != 0 || !h.is_ascii() {
            return Err(cx.syntax(*c, "hex data must have an even number of digits"));
        }
        let bytes = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| cx.syntax(*c, "bad hex digit"))?;
        return Ok(ConstImage { name, addr, bytes });
    }
    let dtype = parse_dtype(cx, toks.get(2))?;
    let (dims, i) = parse_list(cx, toks, 3)?;
    let shape = dims
        .iter()
        .map(|(d, c)| parse_u64(d).map_err(|m| cx.syntax(*c, m)))
        .collect::<Result<Vec<u64>, _>>()?;
    let addr = parse_addr(cx, toks.get(i))?;
    match toks.get(i + 1) {
        Some((t, _)) if t == "=" => {}
        Some((t, c)) => return Err(cx.syntax(*c, format!("expected `=`, found `{t}`"))),
        None => return Err(cx.syntax(1, "missing `= [values]`")),
    }
    let (vals, end) = parse_list(cx, toks, i + 2)?;
    if let Some((t, c)) = toks.get(end) {
        return Err(cx.syntax(*c, format!("unexpected `{t}`")));
    }
    let n: u64 = shape.iter().product();
    if vals.len() as u64 != n {
        return Err(cx.syntax(
            toks[3].1,
            format!("shape {shape:?} holds {n} values, {} given", vals.len()),
        ));
    }
    let mut bytes = Vec::new();
    for (v, c) in &vals {
        let x: f32 = f32::parse_asm(v).map_err(|m| cx.syntax(*c, m))?;
        crate::program::push_value(&mut bytes, dtype, x);
    }
    Ok(ConstImage { name, addr, bytes })
}

fn parse_io(cx: &LineCtx, toks: &[(String, usize)], kind: IoKind) -> Result<IoEntry, AsmError> {
    let name = parse_name(cx, toks.get(1), "tensor name")?;
    let dtype = parse_dtype(cx, toks.get(2))?;
    let (dims, i) = parse_list(cx, toks, 3)?;
    let shape = dims
        .iter()
        .map(|(d, c)| parse_u64(d).map_err(|m| cx.syntax(*c, m)))
        .collect::<Result<Vec<u64>, _>>()?;
    let addr = parse_addr(cx, toks.get(i))?;
    if let Some((t, c)) = toks.get(i + 1) {
        return Err(cx.syntax(*c, format!("unexpected `{t}`")));
    }
    Ok(IoEntry {
        name,
        kind,
        dtype,
        shape,
        addr,
    })
}

/// Parses `.kernel N ops=K` (N must be the next table index).
fn parse_kernel_head(cx: &LineCtx, toks: &[(String, usize)], next: usize) -> Result<u32, AsmError> {
    let (t, c) = toks
        .get(1)
        .ok_or_else(|| cx.syntax(1, "missing kernel index"))?;
    let i = parse_u64(t).map_err(|m| cx.syntax(*c, m))?;
    if i != next as u64 {
        return Err(cx.syntax(
            *c,
            format!("kernel {i} out of order: kernels are numbered 0, 1, ... (expected {next})"),
        ));
    }
    let (t, c) = toks
        .get(2)
        .ok_or_else(|| cx.syntax(1, "missing `ops=K` (the kernel's op count per element)"))?;
    let ops = t
        .strip_prefix("ops=")
        .ok_or_else(|| cx.syntax(*c, format!("expected `ops=K`, found `{t}`")))?;
    let ops = parse_u64(ops).map_err(|m| cx.syntax(*c, m))?;
    let ops = u32::try_from(ops).map_err(|_| cx.syntax(*c, "op count does not fit 32 bits"))?;
    if let Some((t, c)) = toks.get(3) {
        return Err(cx.syntax(*c, format!("unexpected `{t}`")));
    }
    Ok(ops)
}

/// Parses assembly text into a program and checks every legality rule.
pub fn assemble(text: &str) -> Result<Program, AsmError> {
    let mut p = Program::default();
    let mut lines: Vec<Vec<usize>> = Vec::new(); // per stream, per instruction: source line
    let mut cur: Option<usize> = None;
    let mut cur_op: Option<u32> = None;
    // An open `.kernel` block: its op count, first line and text so far.
    let mut kernel: Option<(u32, usize, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let cx = LineCtx { line: idx + 1 };
        if let Some((ops, _, clif)) = &mut kernel {
            if raw.trim() == ".endkernel" {
                p.kernels.push(GpsimdKernel {
                    ops_per_elem: *ops,
                    clif: std::mem::take(clif),
                });
                kernel = None;
            } else {
                clif.push_str(raw.strip_prefix(KERNEL_INDENT).unwrap_or(raw.trim_start()));
                clif.push('\n');
            }
            continue;
        }
        let toks = tokenize(raw, cx.line)?;
        let Some((head, col)) = toks.first() else {
            continue;
        };
        match head.as_str() {
            ".stream" => {
                let (t, c) = toks
                    .get(1)
                    .ok_or_else(|| cx.syntax(*col, "missing stream name"))?;
                let id = StreamId::parse(t).ok_or_else(|| {
                    cx.syntax(
                        *c,
                        format!(
                            "unknown stream `{t}` (tensor, vector, scalar, gpsimd or dma0..dma{})",
                            crate::machine::DMA_QUEUES - 1
                        ),
                    )
                })?;
                if p.streams.iter().any(|s| s.id == id) {
                    return Err(cx.syntax(*c, format!("stream {id} declared twice")));
                }
                p.streams.push(Stream {
                    id,
                    insts: vec![],
                    op_ids: vec![],
                });
                lines.push(vec![]);
                cur = Some(p.streams.len() - 1);
                cur_op = None;
            }
            ".op" => {
                cur_op = match toks.get(1) {
                    Some((t, _)) if t == "-" => None,
                    _ => {
                        let name = parse_name(&cx, toks.get(1), "op name")?;
                        let id = match p.ops.iter().position(|o| *o == name) {
                            Some(i) => i,
                            None => {
                                p.ops.push(name);
                                p.ops.len() - 1
                            }
                        };
                        Some(id as u32)
                    }
                };
            }
            ".input" => p.io.push(parse_io(&cx, &toks, IoKind::Input)?),
            ".output" => p.io.push(parse_io(&cx, &toks, IoKind::Output)?),
            ".const" => p.consts.push(parse_const(&cx, &toks)?),
            ".kernel" => {
                let ops = parse_kernel_head(&cx, &toks, p.kernels.len())?;
                kernel = Some((ops, cx.line, String::new()));
            }
            d if d.starts_with('.') => {
                return Err(cx.syntax(*col, format!("unknown directive `{d}`")))
            }
            _ => {
                let s = cur.ok_or_else(|| cx.syntax(*col, "instruction before any `.stream`"))?;
                let inst = parse_inst(&cx, &toks)?;
                p.streams[s].insts.push(inst);
                p.streams[s].op_ids.push(cur_op);
                lines[s].push(cx.line);
            }
        }
    }
    if let Some((_, start, _)) = kernel {
        return Err(AsmError::Syntax {
            line: start,
            column: 1,
            message: "`.kernel` without `.endkernel`".into(),
        });
    }
    check_program(&p).map_err(|violation| {
        let si = p
            .streams
            .iter()
            .position(|s| s.id == violation.stream)
            .unwrap_or(0);
        let line = lines
            .get(si)
            .and_then(|l| l.get(violation.pc).or(l.last()))
            .copied()
            .unwrap_or(0);
        AsmError::Illegal { line, violation }
    })?;
    Ok(p)
}

/// Parses one instruction line (no directives), e.g. for tests and tools.
pub fn parse_inst_line(line: &str) -> Result<Inst, AsmError> {
    let cx = LineCtx { line: 1 };
    let toks = tokenize(line, 1)?;
    if toks.is_empty() {
        return Err(cx.syntax(1, "empty line"));
    }
    parse_inst(&cx, &toks)
}
