//! Small builders for hand-made test programs.
#![allow(dead_code)]

use tahoma_isa::program::{IoEntry, IoKind, Program, Stream, StreamId};
use tahoma_isa::{Ap, DmaAp, DmaCopy, Dtype, End, Header, Inst, Mem};

/// A program from per-stream instruction lists; END is appended to each; every instruction
/// gets op id = its stream's index so error reports can name an op.
pub fn program(streams: Vec<(StreamId, Vec<Inst>)>, io: Vec<IoEntry>) -> Program {
    let mut ops = Vec::new();
    let streams = streams
        .into_iter()
        .enumerate()
        .map(|(i, (id, mut insts))| {
            ops.push(format!("op_{id}"));
            insts.push(Inst::End(End::default()));
            Stream {
                id,
                op_ids: vec![Some(i as u32); insts.len()],
                insts,
            }
        })
        .collect();
    Program {
        streams,
        io,
        consts: Vec::new(),
        ops,
        kernels: Vec::new(),
    }
}

pub fn io(name: &str, kind: IoKind, dtype: Dtype, shape: &[u64], addr: u64) -> IoEntry {
    IoEntry {
        name: name.into(),
        kind,
        dtype,
        shape: shape.to_vec(),
        addr,
    }
}

pub fn wait(sem: u64, value: u64) -> Header {
    let mut h = Header::default();
    h.add_wait(sem, value).unwrap();
    h
}

pub fn signal(sem: u64, inc: u64) -> Header {
    Header {
        signal_sem: sem,
        signal_inc: inc,
        ..Header::default()
    }
}

pub fn sbuf(dtype: Dtype, parts: u64, offset: u64, dims: &[(u64, i64)]) -> Ap {
    Ap::new(Mem::Sbuf, dtype, 0, parts, offset, dims)
}

pub fn psum(parts: u64, offset: u64, dims: &[(u64, i64)]) -> Ap {
    Ap::new(Mem::Psum, Dtype::Fp32, 0, parts, offset, dims)
}

/// A row-major [parts, free] HBM tensor at `addr`, one row per partition.
pub fn hbm_rows(dtype: Dtype, parts: u64, free: u64, addr: u64) -> DmaAp {
    DmaAp::new(Mem::Hbm, dtype, 0, parts, free as i64, addr, &[(free, 1)])
}

/// The same rows in SBUF at `offset`.
pub fn sbuf_rows(dtype: Dtype, parts: u64, free: u64, offset: u64) -> DmaAp {
    DmaAp::new(Mem::Sbuf, dtype, 0, parts, 0, offset, &[(free, 1)])
}

pub fn dma(q: u64, src: DmaAp, dst: DmaAp, sync: Header) -> Inst {
    Inst::DmaCopy(DmaCopy {
        sync,
        src,
        dst,
        queue: q,
    })
}
