//! The `.tbin` program container: a versioned header, then tagged sections: one instruction
//! stream per engine and DMA queue, the I/O table, constant HBM images (weights) and debug info
//! mapping every instruction to the op it came from. [`Program::to_bytes`] and
//! [`Program::from_bytes`] are exact inverses; `from_bytes` refuses a malformed file with a
//! [`ProgramError`] (never a panic) and leaves semantic checks to [`crate::check`].
//!
//! Layout (little-endian): `b"TBIN"`, u16 major, u16 minor, u32 section count, then per section
//! u32 tag, u64 payload length, payload. Tags: 1 stream, 2 I/O table, 3 constants, 4 op names,
//! 5 the GpSimd kernel table (per kernel: u32 op count per element, then its Cranelift IR text;
//! written only when the program has kernels, so older readers still load kernel-free files).

use crate::{DecodeError, Dtype, EncodeError, Inst};
use std::fmt;

pub const MAGIC: &[u8; 4] = b"TBIN";
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 1;

const TAG_STREAM: u32 = 1;
const TAG_IO: u32 = 2;
const TAG_CONST: u32 = 3;
const TAG_OPS: u32 = 4;
const TAG_KERNELS: u32 = 5;

/// Which sequencer runs a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    Tensor,
    Vector,
    Scalar,
    Gpsimd,
    Dma(u8),
}

impl StreamId {
    fn kind_byte(self) -> (u8, u8) {
        match self {
            StreamId::Tensor => (0, 0),
            StreamId::Vector => (1, 0),
            StreamId::Scalar => (2, 0),
            StreamId::Dma(q) => (3, q),
            StreamId::Gpsimd => (4, 0),
        }
    }
    fn from_kind_byte(kind: u8, index: u8) -> Option<StreamId> {
        Some(match (kind, index) {
            (0, 0) => StreamId::Tensor,
            (1, 0) => StreamId::Vector,
            (2, 0) => StreamId::Scalar,
            (4, 0) => StreamId::Gpsimd,
            (3, q) if u64::from(q) < crate::machine::DMA_QUEUES => StreamId::Dma(q),
            _ => return None,
        })
    }
    /// Parses `tensor`, `vector`, `scalar`, `gpsimd` or `dmaN`.
    pub fn parse(s: &str) -> Option<StreamId> {
        match s {
            "tensor" => Some(StreamId::Tensor),
            "vector" => Some(StreamId::Vector),
            "scalar" => Some(StreamId::Scalar),
            "gpsimd" => Some(StreamId::Gpsimd),
            _ => {
                let q: u8 = s.strip_prefix("dma")?.parse().ok()?;
                (u64::from(q) < crate::machine::DMA_QUEUES).then_some(StreamId::Dma(q))
            }
        }
    }
    /// The engine class whose instructions this stream may hold.
    pub fn engine_class(self) -> crate::EngineClass {
        match self {
            StreamId::Tensor => crate::EngineClass::Tensor,
            StreamId::Vector => crate::EngineClass::Vector,
            StreamId::Scalar => crate::EngineClass::Scalar,
            StreamId::Gpsimd => crate::EngineClass::Gpsimd,
            StreamId::Dma(_) => crate::EngineClass::Dma,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::Tensor => f.write_str("tensor"),
            StreamId::Vector => f.write_str("vector"),
            StreamId::Scalar => f.write_str("scalar"),
            StreamId::Gpsimd => f.write_str("gpsimd"),
            StreamId::Dma(q) => write!(f, "dma{q}"),
        }
    }
}

/// One engine's instruction stream, with the op (index into [`Program::ops`]) each came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub id: StreamId,
    pub insts: Vec<Inst>,
    /// Per instruction: index into `Program::ops`, or `None` when unknown.
    pub op_ids: Vec<Option<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    Input,
    Output,
}

/// A named program input or output tensor living in HBM (row-major, densely packed).
#[derive(Clone, Debug, PartialEq)]
pub struct IoEntry {
    pub name: String,
    pub kind: IoKind,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub addr: u64,
}

impl IoEntry {
    pub fn elems(&self) -> u64 {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> u64 {
        self.elems() * self.dtype.size_bytes()
    }
}

/// Bytes preloaded into HBM before the program runs (weights, constants).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstImage {
    pub name: String,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// One entry of the GpSimd kernel table: a Cranelift IR function (the text `cranelift-reader`
/// parses) that `GPSIMD_KERNEL` calls once per element, and its cost in ops per element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GpsimdKernel {
    /// Ops the kernel executes per element (host math calls count `gpsimd_math_call_ops`).
    pub ops_per_elem: u32,
    /// The function's CLIF text.
    pub clif: String,
}

/// A whole program: what `.tbin` holds.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    pub streams: Vec<Stream>,
    pub io: Vec<IoEntry>,
    pub consts: Vec<ConstImage>,
    /// Names of the ops instructions came from (ONNX node names once compiled from a model).
    pub ops: Vec<String>,
    /// The GpSimd kernel table (`GPSIMD_KERNEL` instructions index it).
    pub kernels: Vec<GpsimdKernel>,
}

/// Why a `.tbin` file was refused. Each variant has a stable code.
#[derive(Clone, Debug, PartialEq)]
pub enum ProgramError {
    Truncated {
        what: String,
    },
    BadMagic,
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
    Malformed {
        what: String,
    },
    Instruction {
        stream: StreamId,
        pc: usize,
        error: DecodeError,
    },
    Encode {
        stream: StreamId,
        pc: usize,
        error: EncodeError,
    },
}

impl ProgramError {
    pub fn code(&self) -> &'static str {
        match self {
            ProgramError::Truncated { .. } => "E2001",
            ProgramError::BadMagic => "E2002",
            ProgramError::UnsupportedVersion { .. } => "E2003",
            ProgramError::Malformed { .. } => "E2004",
            ProgramError::Instruction {
                error: DecodeError::UnknownOpcode(_),
                ..
            } => "E2005",
            ProgramError::Instruction { .. } => "E2006",
            ProgramError::Encode { .. } => "E2007",
        }
    }
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Truncated { what } => write!(f, "truncated program: {what} runs past the end of the file"),
            ProgramError::BadMagic => write!(f, "not a tahoma program: the file does not start with `TBIN`"),
            ProgramError::UnsupportedVersion { major, minor } => write!(
                f,
                "program format version {major}.{minor} is not supported (this build reads {VERSION_MAJOR}.x); recompile the model"
            ),
            ProgramError::Malformed { what } => write!(f, "malformed program: {what}"),
            ProgramError::Instruction { stream, pc, error } => write!(f, "stream {stream}, pc {pc}: {error}"),
            ProgramError::Encode { stream, pc, error } => write!(f, "stream {stream}, pc {pc}: cannot encode: {error}"),
        }
    }
}

impl std::error::Error for ProgramError {}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn section(&mut self, tag: u32, payload: Writer) {
        self.u32(tag);
        self.bytes(&payload.0);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], ProgramError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(ProgramError::Truncated {
                what: self.what.to_string(),
            }),
        }
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], ProgramError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProgramError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ProgramError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, ProgramError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, ProgramError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], ProgramError> {
        let n = self.u64()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, ProgramError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| ProgramError::Malformed {
            what: format!("{} holds a name that is not UTF-8", self.what),
        })
    }
    fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

fn malformed(what: impl Into<String>) -> ProgramError {
    ProgramError::Malformed { what: what.into() }
}

impl Program {
    /// The stream for `id`, if the program has one.
    pub fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    /// The op name instruction `pc` of `stream` came from.
    pub fn op_of(&self, stream: &Stream, pc: usize) -> Option<&str> {
        let id = (*stream.op_ids.get(pc)?)?;
        self.ops.get(id as usize).map(String::as_str)
    }

    /// Serialises the program. Fails only if an instruction field does not fit its bits.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProgramError> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.u16(VERSION_MAJOR);
        w.u16(VERSION_MINOR);
        let sections = self.streams.len() + 3 + usize::from(!self.kernels.is_empty());
        w.u32(sections as u32);
        for s in &self.streams {
            let mut p = Writer(Vec::new());
            let (k, i) = s.id.kind_byte();
            p.u8(k);
            p.u8(i);
            p.u64(s.insts.len() as u64);
            let mut code = Vec::new();
            for (pc, inst) in s.insts.iter().enumerate() {
                inst.encode(&mut code)
                    .map_err(|error| ProgramError::Encode {
                        stream: s.id,
                        pc,
                        error,
                    })?;
            }
            p.bytes(&code);
            for pc in 0..s.insts.len() {
                p.u32(s.op_ids.get(pc).copied().flatten().unwrap_or(u32::MAX));
            }
            w.section(TAG_STREAM, p);
        }
        let mut p = Writer(Vec::new());
        p.u64(self.io.len() as u64);
        for e in &self.io {
            p.str(&e.name);
            p.u8(match e.kind {
                IoKind::Input => 0,
                IoKind::Output => 1,
            });
            p.u8(e.dtype.code() as u8);
            p.u64(e.shape.len() as u64);
            for &d in &e.shape {
                p.u64(d);
            }
            p.u64(e.addr);
        }
        w.section(TAG_IO, p);
        let mut p = Writer(Vec::new());
        p.u64(self.consts.len() as u64);
        for c in &self.consts {
            p.str(&c.name);
            p.u64(c.addr);
            p.bytes(&c.bytes);
        }
        w.section(TAG_CONST, p);
        let mut p = Writer(Vec::new());
        p.u64(self.ops.len() as u64);
        for o in &self.ops {
            p.str(o);
        }
        w.section(TAG_OPS, p);
        if !self.kernels.is_empty() {
            let mut p = Writer(Vec::new());
            p.u64(self.kernels.len() as u64);
            for k in &self.kernels {
                p.u32(k.ops_per_elem);
                p.str(&k.clif);
            }
            w.section(TAG_KERNELS, p);
        }
        Ok(w.0)
    }

    /// Parses a `.tbin` image. Structural checks only (layout, opcodes, field encodings, op ids);
    /// legality of instructions is [`crate::check::check_program`]'s job.
    pub fn from_bytes(buf: &[u8]) -> Result<Program, ProgramError> {
        let mut r = Reader {
            buf,
            pos: 0,
            what: "header",
        };
        let magic = r.take(4).map_err(|_| ProgramError::BadMagic)?;
        if magic != MAGIC {
            return Err(ProgramError::BadMagic);
        }
        let (major, minor) = (r.u16()?, r.u16()?);
        if major != VERSION_MAJOR {
            return Err(ProgramError::UnsupportedVersion { major, minor });
        }
        let nsec = r.u32()?;
        let mut prog = Program::default();
        let (mut saw_io, mut saw_const, mut saw_ops, mut saw_kernels) =
            (false, false, false, false);
        for _ in 0..nsec {
            r.what = "section header";
            let tag = r.u32()?;
            r.what = "section payload";
            let payload = r.bytes()?;
            match tag {
                TAG_STREAM => prog.streams.push(read_stream(payload)?),
                TAG_IO if !saw_io => {
                    saw_io = true;
                    prog.io = read_io(payload)?;
                }
                TAG_CONST if !saw_const => {
                    saw_const = true;
                    prog.consts = read_consts(payload)?;
                }
                TAG_OPS if !saw_ops => {
                    saw_ops = true;
                    let mut p = Reader {
                        buf: payload,
                        pos: 0,
                        what: "op-name section",
                    };
                    let n = p.u64()?;
                    for _ in 0..n {
                        prog.ops.push(p.str()?);
                    }
                    if !p.done() {
                        return Err(malformed("op-name section has trailing bytes"));
                    }
                }
                TAG_KERNELS if !saw_kernels => {
                    saw_kernels = true;
                    prog.kernels = read_kernels(payload)?;
                }
                TAG_IO | TAG_CONST | TAG_OPS | TAG_KERNELS => {
                    return Err(malformed(format!("section {tag} appears twice")))
                }
                other => return Err(malformed(format!("unknown section tag {other}"))),
            }
        }
        if !r.done() {
            return Err(malformed("trailing bytes after the last section"));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &prog.streams {
            if !seen.insert(s.id) {
                return Err(malformed(format!("two streams for {}", s.id)));
            }
            for (pc, id) in s.op_ids.iter().enumerate() {
                if let Some(id) = id {
                    if *id as usize >= prog.ops.len() {
                        return Err(malformed(format!(
                            "stream {}, pc {pc}: debug op id {id} out of range ({} ops)",
                            s.id,
                            prog.ops.len()
                        )));
                    }
                }
            }
        }
        Ok(prog)
    }
}

fn read_stream(payload: &[u8]) -> Result<Stream, ProgramError> {
    let mut p = Reader {
        buf: payload,
        pos: 0,
        what: "stream section",
    };
    let (k, i) = (p.u8()?, p.u8()?);
    let id = StreamId::from_kind_byte(k, i)
        .ok_or_else(|| malformed(format!("unknown stream kind {k}/{i}")))?;
    let n = p.u64()?;
    let code = p.bytes()?;
    let mut insts = Vec::new();
    let mut pos = 0;
    while pos < code.len() {
        let (inst, len) =
            Inst::decode(&code[pos..]).map_err(|error| ProgramError::Instruction {
                stream: id,
                pc: insts.len(),
                error,
            })?;
        insts.push(inst);
        pos += len;
    }
    if insts.len() as u64 != n {
        return Err(malformed(format!(
            "stream {id} declares {n} instructions but holds {}",
            insts.len()
        )));
    }
    let mut op_ids = Vec::with_capacity(insts.len());
    for _ in 0..insts.len() {
        let v = p.u32()?;
        op_ids.push((v != u32::MAX).then_some(v));
    }
    if !p.done() {
        return Err(malformed(format!("stream {id} has trailing bytes")));
    }
    Ok(Stream { id, insts, op_ids })
}

fn read_io(payload: &[u8]) -> Result<Vec<IoEntry>, ProgramError> {
    let mut p = Reader {
        buf: payload,
        pos: 0,
        what: "I/O table",
    };
    let n = p.u64()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = p.str()?;
        let kind = match p.u8()? {
            0 => IoKind::Input,
            1 => IoKind::Output,
            k => {
                return Err(malformed(format!(
                    "I/O entry `{name}` has unknown kind {k}"
                )))
            }
        };
        let dc = p.u8()?;
        let dtype = Dtype::from_code(u64::from(dc))
            .ok_or_else(|| malformed(format!("I/O entry `{name}` has unknown dtype {dc}")))?;
        let rank = p.u64()?;
        if rank > 16 {
            return Err(malformed(format!("I/O entry `{name}` has rank {rank}")));
        }
        let mut shape = Vec::new();
        for _ in 0..rank {
            shape.push(p.u64()?);
        }
        let addr = p.u64()?;
        let e = IoEntry {
            name,
            kind,
            dtype,
            shape,
            addr,
        };
        let bytes = e
            .shape
            .iter()
            .try_fold(e.dtype.size_bytes(), |a, &d| a.checked_mul(d));
        match bytes.and_then(|b| b.checked_add(e.addr)) {
            Some(end) if end <= crate::machine::HBM_BYTES => {}
            _ => {
                return Err(malformed(format!(
                    "I/O entry `{}` does not fit in HBM",
                    e.name
                )))
            }
        }
        out.push(e);
    }
    if !p.done() {
        return Err(malformed("I/O table has trailing bytes"));
    }
    Ok(out)
}

fn read_kernels(payload: &[u8]) -> Result<Vec<GpsimdKernel>, ProgramError> {
    let mut p = Reader {
        buf: payload,
        pos: 0,
        what: "kernel table",
    };
    let n = p.u64()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let ops_per_elem = p.u32()?;
        let clif = p.str()?;
        out.push(GpsimdKernel { ops_per_elem, clif });
    }
    if !p.done() {
        return Err(malformed("kernel table has trailing bytes"));
    }
    Ok(out)
}

fn read_consts(payload: &[u8]) -> Result<Vec<ConstImage>, ProgramError> {
    let mut p = Reader {
        buf: payload,
        pos: 0,
        what: "constant section",
    };
    let n = p.u64()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = p.str()?;
        let addr = p.u64()?;
        let bytes = p.bytes()?.to_vec();
        match addr.checked_add(bytes.len() as u64) {
            Some(end) if end <= crate::machine::HBM_BYTES => {}
            _ => return Err(malformed(format!("constant `{name}` does not fit in HBM"))),
        }
        out.push(ConstImage { name, addr, bytes });
    }
    if !p.done() {
        return Err(malformed("constant section has trailing bytes"));
    }
    Ok(out)
}

/// Appends `v` converted to `dtype` (round to nearest even) as little-endian bytes.
pub fn push_value(out: &mut Vec<u8>, dtype: Dtype, v: f32) {
    match dtype {
        Dtype::Fp32 => out.extend_from_slice(&v.to_le_bytes()),
        Dtype::I32 => out.extend_from_slice(&(v.round_ties_even() as i32).to_le_bytes()),
        Dtype::Bf16 => out.extend_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes()),
        Dtype::Fp16 => out.extend_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes()),
    }
}
