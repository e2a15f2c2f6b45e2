//! Orders the engines: finds, for every instruction, the latest instruction of every other stream
//! that touches an overlapping byte range of the same memory with at least one write (RAW, WAR,
//! WAW), and turns those dependencies into semaphore waits. Each stream counts its completed
//! producer instructions on its own semaphore (`sem += 1` on every instruction another stream
//! waits for), so a wait is `sem[stream] >= ordinal of the producer`.
//!
//! Vector clocks bound the search: what an instruction already (transitively) waits for is known
//! complete and is not scanned again. A LOAD_STATIONARY may finish before the MATMUL ahead of it,
//! so it never signals; a dependency on one moves to the next instruction of the tensor stream.
//! Instructions waiting on more than two streams get NOPs in front carrying the extra waits.

use super::layout::Layout;
use super::lower_ops::FlatInst;
use crate::diag::{Code, Diagnostic};
use crate::kernel::{HbmKind, KernelProgram};
use std::collections::BTreeMap;
use tahoma_isa::check::{byte_span, onchip_operands};
use tahoma_isa::program::{ConstImage, IoEntry, IoKind, Program, Stream, StreamId};
use tahoma_isa::{machine, Ap, DmaAp, End, Header, Inst, Mem, Nop};

/// Bytes an access touches: memory, partition range, byte range (ends exclusive).
#[derive(Clone, Copy, Debug)]
struct Region {
    mem: Mem,
    parts: (u64, u64),
    bytes: (i128, i128),
    write: bool,
    /// The access as rows that do not overlap (its outermost dim of more than one element, the
    /// partition dim in HBM): (first row's byte range, row stride in bytes, rows). Accesses
    /// with the same row stride (or a single row) are compared row by row, so the column chunks
    /// of a row-major tensor, or the slots of a ring laid out along an inner dim, do not depend
    /// on each other.
    rows: Option<Rows>,
}

type Rows = ((i128, i128), i128, u64);

fn rows_of(
    offset: u64,
    esize: u64,
    dims: &[(u64, i64)],
    outer: Option<(u64, i64)>,
) -> Option<Rows> {
    let all: Vec<(u64, i64)> = outer
        .into_iter()
        .chain(dims.iter().copied())
        .filter(|d| d.0 != 1)
        .collect();
    // A dense access is one row.
    let span = byte_span(offset, esize, &all, None)?;
    let elems: u64 = all.iter().map(|d| d.0).product();
    if span.1 - span.0 == (elems * esize) as i128 {
        return Some((span, span.1 - span.0, 1));
    }
    let (&(count, stride), inner) = all.split_first()?;
    let row = byte_span(offset, esize, inner, None)?;
    let stride = stride as i128 * esize as i128;
    (stride > 0 && stride >= row.1 - row.0).then_some((row, stride, count))
}

fn ap_region(a: &Ap, write: bool) -> Option<Region> {
    let bytes = byte_span(a.offset, a.dtype.size_bytes(), &a.dims(), None)?;
    Some(Region {
        mem: a.mem,
        parts: (a.part_start, a.part_start + a.part_count),
        bytes,
        write,
        rows: rows_of(a.offset, a.dtype.size_bytes(), &a.dims(), None),
    })
}

fn dma_region(a: &DmaAp, write: bool) -> Option<Region> {
    if a.mem == Mem::Hbm {
        let bytes = byte_span(
            a.offset,
            a.dtype.size_bytes(),
            &a.dims(),
            Some((a.part_count, a.part_stride)),
        )?;
        Some(Region {
            mem: a.mem,
            parts: (0, 1),
            bytes,
            write,
            rows: rows_of(
                a.offset,
                a.dtype.size_bytes(),
                &a.dims(),
                Some((a.part_count, a.part_stride)),
            ),
        })
    } else {
        let bytes = byte_span(a.offset, a.dtype.size_bytes(), &a.dims(), None)?;
        Some(Region {
            mem: a.mem,
            parts: (a.part_start, a.part_start + a.part_count),
            bytes,
            write,
            rows: rows_of(a.offset, a.dtype.size_bytes(), &a.dims(), None),
        })
    }
}

fn regions(inst: &Inst) -> Vec<Region> {
    if let Inst::DmaCopy(d) = inst {
        return [dma_region(&d.src, false), dma_region(&d.dst, true)]
            .into_iter()
            .flatten()
            .collect();
    }
    if let Inst::DmaGather(d) = inst {
        // The whole table may be read.
        let mut table = d.src;
        table.part_count = d.rows;
        return [
            dma_region(&table, false),
            dma_region(&d.dst, true),
            ap_region(&d.index, false),
        ]
        .into_iter()
        .flatten()
        .collect();
    }
    onchip_operands(inst)
        .iter()
        .filter_map(|(name, ap)| ap_region(ap, name == "dst" || name == "acc"))
        .collect()
}

/// Whether two row sets of stride `stride` share a byte: row j of `y` against row i of `x` is
/// shifted by `d + (j - i) * stride`; they overlap when that shift lies in (-len_y, len_x).
fn rows_overlap((xr, _, xn): Rows, (yr, _, yn): Rows, stride: i128) -> bool {
    let (lx, ly) = (xr.1 - xr.0, yr.1 - yr.0);
    let d = yr.0 - xr.0;
    // Smallest shift index t = j - i with d + t * stride > -ly.
    let t = (-ly - d).div_euclid(stride) + 1;
    let (tmin, tmax) = (-(xn as i128 - 1), yn as i128 - 1);
    let t = t.max(tmin);
    t <= tmax && d + t * stride < lx
}

fn conflict(a: &[Region], b: &[Region]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            (x.write || y.write)
                && x.mem == y.mem
                && x.parts.0 < y.parts.1
                && y.parts.0 < x.parts.1
                && x.bytes.0 < y.bytes.1
                && y.bytes.0 < x.bytes.1
                && match (x.rows, y.rows) {
                    (Some(rx), Some(ry)) if rx.1 == ry.1 || rx.2 == 1 || ry.2 == 1 => {
                        // A single row takes the other's stride (any stride fits one row).
                        let stride = if rx.2 > 1 { rx.1 } else { ry.1 };
                        rows_overlap(rx, ry, stride)
                    }
                    (Some(rx), None) => rows_overlap(rx, (y.bytes, rx.1, 1), rx.1),
                    (None, Some(ry)) => rows_overlap((x.bytes, ry.1, 1), ry, ry.1),
                    _ => true,
                }
        })
    })
}

/// Dense index of a stream: tensor, vector, scalar, the DMA queues, then GpSimd (last, so
/// adding it left the other streams' semaphores unchanged).
fn stream_index(s: StreamId) -> usize {
    match s {
        StreamId::Tensor => 0,
        StreamId::Vector => 1,
        StreamId::Scalar => 2,
        StreamId::Dma(q) => 3 + q as usize,
        StreamId::Gpsimd => 3 + machine::DMA_QUEUES as usize,
    }
}

fn stream_of(i: usize) -> StreamId {
    match i {
        0 => StreamId::Tensor,
        1 => StreamId::Vector,
        2 => StreamId::Scalar,
        i if i == 3 + machine::DMA_QUEUES as usize => StreamId::Gpsimd,
        q => StreamId::Dma((q - 3) as u8),
    }
}

/// Builds the program: streams with semaphores, I/O table, constants, provenance.
pub fn schedule(
    kp: &KernelProgram,
    layout: &Layout,
    flat: Vec<FlatInst>,
) -> Result<Program, Diagnostic> {
    let nstreams = 4 + machine::DMA_QUEUES as usize;
    // Semaphore of stream i is i + 1 (semaphore 0 stays unused so an empty wait reads clearly).
    if nstreams as u64 + 1 > machine::SEMAPHORES {
        return Err(Diagnostic::new(
            Code::KernelInvalid,
            format!(
                "{nstreams} streams need more than the chip's {} semaphores",
                machine::SEMAPHORES
            ),
        ));
    }
    // Per stream: global indices of its instructions, in order.
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); nstreams];
    let mut pos = vec![0usize; flat.len()];
    for (g, f) in flat.iter().enumerate() {
        let s = stream_index(f.stream);
        pos[g] = per[s].len();
        per[s].push(g);
    }
    let regs: Vec<Vec<Region>> = flat.iter().map(|f| regions(&f.inst)).collect();
    // Vector clock per instruction: for each stream, the number of its instructions known
    // complete when this one starts.
    let mut clock: Vec<Vec<usize>> = Vec::with_capacity(flat.len());
    let mut deps: Vec<Vec<(usize, usize)>> = vec![Vec::new(); flat.len()];
    let mut last_clock: Vec<Vec<usize>> = vec![vec![0; nstreams]; nstreams];
    for (g, f) in flat.iter().enumerate() {
        let s = stream_index(f.stream);
        let mut vc = last_clock[s].clone();
        // In-order engines: the previous instruction is done (a LOAD_STATIONARY may start while
        // the MATMUL before it still streams, so for it only the one before that).
        let behind = if matches!(f.inst, Inst::LoadStationary(_)) {
            1
        } else {
            0
        };
        vc[s] = vc[s].max(pos[g].saturating_sub(behind));
        for t in 0..nstreams {
            if t == s {
                continue;
            }
            // Scan stream t backwards over what is not yet known complete.
            let known = vc[t];
            let list = &per[t];
            let upto = list.partition_point(|&h| h < g);
            for k in (known..upto).rev() {
                let h = list[k];
                if conflict(&regs[g], &regs[h]) {
                    // A LOAD_STATIONARY never signals: wait for the next tensor instruction.
                    let mut k2 = k;
                    while matches!(
                        flat.get(list.get(k2).copied().unwrap_or(usize::MAX))
                            .map(|x| &x.inst),
                        Some(Inst::LoadStationary(_))
                    ) {
                        k2 += 1;
                    }
                    if list.get(k2).is_some_and(|&h2| h2 > g) {
                        return Err(Diagnostic::new(
                            Code::KernelInvalid,
                            "an instruction between a load_stationary and the matmul after it touches the stationary's source; keep each load_stationary right before its matmul",
                        )
                        .at_node(kp.kernels[f.kernel].name.clone(), kp.kernels[f.kernel].op.clone()));
                    }
                    deps[g].push((t, k2));
                    // Everything stream t did up to k2 is complete, and all k2 knew.
                    vc[t] = vc[t].max(k2 + 1);
                    if let Some(&h2) = list.get(k2) {
                        if h2 < g {
                            let other = clock[h2].clone();
                            for (a, b) in vc.iter_mut().zip(other) {
                                *a = (*a).max(b);
                            }
                        }
                    }
                    break;
                }
            }
        }
        last_clock[s] = vc.clone();
        clock.push(vc);
    }
    // Producers and their ordinals (1-based count of producers up to and including them).
    let mut is_producer: Vec<Vec<bool>> = per.iter().map(|l| vec![false; l.len() + 1]).collect();
    for d in &deps {
        for &(t, k) in d {
            is_producer[t][k] = true;
        }
    }
    let ordinals: Vec<Vec<u64>> = is_producer
        .iter()
        .map(|flags| {
            let mut n = 0;
            flags
                .iter()
                .map(|&p| {
                    if p {
                        n += 1;
                        n
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    // Emit.
    let mut streams: Vec<Stream> = (0..nstreams)
        .map(|i| Stream {
            id: stream_of(i),
            insts: vec![],
            op_ids: vec![],
        })
        .collect();
    for (g, f) in flat.into_iter().enumerate() {
        let s = stream_index(f.stream);
        let mut waits: BTreeMap<usize, u64> = BTreeMap::new();
        for &(t, k) in &deps[g] {
            let w = waits.entry(t).or_insert(0);
            *w = (*w).max(ordinals[t][k]);
        }
        let mut waits: Vec<(u64, u64)> =
            waits.into_iter().map(|(t, v)| (t as u64 + 1, v)).collect();
        let op_id = Some(f.kernel as u32);
        while waits.len() > 2 {
            let mut sync = Header::default();
            for (sem, v) in waits.drain(..2) {
                sync.add_wait(sem, v)
                    .map_err(|m| Diagnostic::new(Code::KernelInvalid, m))?;
            }
            streams[s].insts.push(Inst::Nop(Nop { sync }));
            streams[s].op_ids.push(op_id);
        }
        let mut inst = f.inst;
        let sync = inst.sync_mut();
        for (sem, v) in waits {
            sync.add_wait(sem, v)
                .map_err(|m| Diagnostic::new(Code::KernelInvalid, m))?;
        }
        if is_producer[s][pos[g]] {
            sync.signal_sem = s as u64 + 1;
            sync.signal_inc = 1;
        }
        streams[s].insts.push(inst);
        streams[s].op_ids.push(op_id);
    }
    for (i, st) in streams.iter_mut().enumerate() {
        let mut sync = Header::default();
        if is_producer[i][per[i].len()] {
            sync.signal_sem = i as u64 + 1;
            sync.signal_inc = 1;
        }
        if !st.insts.is_empty() || sync.signal().is_some() {
            st.insts.push(Inst::End(End { sync }));
            st.op_ids.push(None);
        }
    }
    let mut program = Program {
        streams: streams
            .into_iter()
            .filter(|s| !s.insts.is_empty())
            .collect(),
        kernels: kp.gpsimd.clone(),
        ..Program::default()
    };
    // Op names numbered by first appearance (stream by stream), as the assembler numbers them,
    // so a disassembled program reassembles to an equal one.
    // Kernels of one node (e.g. a broadcast and the op reading it) share its name and op id.
    let mut renumber: BTreeMap<&str, u32> = BTreeMap::new();
    for st in &mut program.streams {
        for id in st.op_ids.iter_mut().flatten() {
            let name = kp.kernels[*id as usize].name.as_str();
            let next = renumber.len() as u32;
            *id = *renumber.entry(name).or_insert_with(|| {
                program.ops.push(name.to_string());
                next
            });
        }
    }
    for t in &kp.tensors {
        let addr = layout.hbm[&t.name];
        let shape = t.shape.clone();
        match &t.kind {
            HbmKind::Input { io } => program.io.push(IoEntry {
                name: io.clone(),
                kind: IoKind::Input,
                dtype: t.dtype,
                shape,
                addr,
            }),
            HbmKind::Output { io } => program.io.push(IoEntry {
                name: io.clone(),
                kind: IoKind::Output,
                dtype: t.dtype,
                shape,
                addr,
            }),
            HbmKind::Const { values } => {
                let mut bytes = Vec::with_capacity(values.len() * t.dtype.size_bytes() as usize);
                for &v in values {
                    tahoma_isa::program::push_value(&mut bytes, t.dtype, v);
                }
                program.consts.push(ConstImage {
                    name: t.name.clone(),
                    addr,
                    bytes,
                });
            }
            HbmKind::Scratch => {}
        }
    }
    Ok(program)
}
