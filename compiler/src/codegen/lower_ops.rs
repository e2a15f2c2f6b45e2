//! Kernel ops -> instructions: unrolls loops, resolves views into access patterns (checking that
//! each view stays inside its buffer or tensor), chooses the engine stream of each op and the
//! queue of each DMA ([`dma_queues_for`]: by direction and DMA engines, the least loaded of the
//! group). Output: one flat list in program order.

use super::layout::Layout;
use crate::diag::{Code, Diagnostic};
use crate::kernel::{
    text::op_text, Accumulate, Base, KOp, Kernel, KernelProgram, ScalarArg, Stmt, View,
};
use std::collections::{BTreeMap, HashMap};
use tahoma_isa::costs;
use tahoma_isa::program::StreamId;
use tahoma_isa::*;

/// One instruction in global program order, with the kernel it came from.
#[derive(Clone, Debug)]
pub struct FlatInst {
    pub stream: StreamId,
    pub inst: Inst,
    pub kernel: usize,
}

struct Cx<'a> {
    kp: &'a KernelProgram,
    layout: &'a Layout,
    kernel: &'a Kernel,
    kidx: usize,
    buffers: &'a HashMap<String, u64>,
    /// Loop variable -> (value, start).
    env: BTreeMap<String, (i64, i64)>,
    /// Per DMA queue: the cycles of the DMAs given to it so far, alone on an idle machine.
    queue_load: Vec<u64>,
    /// Where the round robin over the queues resumes.
    next_queue: usize,
    out: Vec<FlatInst>,
}

/// Element span [lo, hi) a view touches relative to its offset, including the partition dim
/// when `outer` is given.
fn span(dims: &[(u64, i64)], outer: Option<(u64, i64)>) -> Option<(i64, i64)> {
    tahoma_isa::check::byte_span(0, 1, dims, outer).map(|(lo, hi)| (lo as i64, hi as i64))
}

impl Cx<'_> {
    fn fail(&self, op: &KOp, msg: String) -> Diagnostic {
        Diagnostic::new(Code::KernelInvalid, format!("{msg} in `{}`", op_text(op)))
            .at_node(self.kernel.name.clone(), self.kernel.op.clone())
    }

    fn eval(&self, e: &crate::kernel::Expr, op: &KOp) -> Result<i64, Diagnostic> {
        let env: BTreeMap<String, i64> = self.env.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        e.eval(&env).map_err(|m| self.fail(op, m))
    }

    /// An on-chip view as an engine access pattern.
    fn ap(&self, v: &View, op: &KOp) -> Result<Ap, Diagnostic> {
        let Base::Buf(name) = &v.base else {
            return Err(self.fail(
                op,
                format!(
                    "engines cannot read HBM tensor {:?} directly; DMA it into a buffer",
                    v.base
                ),
            ));
        };
        let b = self
            .kernel
            .buffer(name)
            .ok_or_else(|| self.fail(op, format!("unknown buffer %{name}")))?;
        let ps = self.eval(&v.part_start, op)?;
        let off = self.eval(&v.offset, op)?;
        if v.part_stride != 0 {
            return Err(self.fail(
                op,
                format!("on-chip view of %{name} has a partition stride"),
            ));
        }
        if ps < 0 || ps as u64 + v.part_count > b.partitions {
            return Err(self.fail(
                op,
                format!(
                    "partitions [{ps}, {}) are outside %{name}'s {}",
                    ps + v.part_count as i64,
                    b.partitions
                ),
            ));
        }
        if let Some((lo, hi)) = span(&v.dims, None) {
            if off + lo < 0 || off + hi > b.free as i64 {
                return Err(self.fail(
                    op,
                    format!(
                        "elements [{}, {}) are outside %{name}'s {} per partition",
                        off + lo,
                        off + hi,
                        b.free
                    ),
                ));
            }
        }
        let addr = self.buffers[name] as i64 + off * b.dtype.size_bytes() as i64;
        Ok(Ap::new(
            b.mem,
            b.dtype,
            ps as u64,
            v.part_count,
            addr as u64,
            &v.dims,
        ))
    }

    /// Any view as a DMA access pattern.
    fn dma_ap(&self, v: &View, op: &KOp) -> Result<DmaAp, Diagnostic> {
        match &v.base {
            Base::Buf(_) => {
                let a = self.ap(v, op)?;
                Ok(DmaAp::new(
                    a.mem,
                    a.dtype,
                    a.part_start,
                    a.part_count,
                    0,
                    a.offset,
                    &a.dims(),
                ))
            }
            Base::Hbm(name) => {
                let t = self
                    .kp
                    .tensor(name)
                    .ok_or_else(|| self.fail(op, format!("unknown HBM tensor @{name}")))?;
                let off = self.eval(&v.offset, op)?;
                if let Some((lo, hi)) = span(&v.dims, Some((v.part_count, v.part_stride))) {
                    if off + lo < 0 || off + hi > t.elems() as i64 {
                        return Err(self.fail(
                            op,
                            format!(
                                "elements [{}, {}) are outside @{name}'s {}",
                                off + lo,
                                off + hi,
                                t.elems()
                            ),
                        ));
                    }
                }
                let addr = self.layout.hbm[name] as i64 + off * t.dtype.size_bytes() as i64;
                Ok(DmaAp::new(
                    Mem::Hbm,
                    t.dtype,
                    0,
                    v.part_count,
                    v.part_stride,
                    addr as u64,
                    &v.dims,
                ))
            }
        }
    }

    fn scalar(&self, s: &ScalarArg, op: &KOp) -> Result<Scalar, Diagnostic> {
        Ok(match s {
            ScalarArg::Imm(v) => Scalar::imm(*v),
            ScalarArg::PerPartition(v) => Scalar::per_partition(self.ap(v, op)?),
        })
    }

    fn emit(&mut self, stream: StreamId, inst: Inst) {
        self.out.push(FlatInst {
            stream,
            inst,
            kernel: self.kidx,
        });
    }

    fn op(&mut self, op: &KOp) -> Result<(), Diagnostic> {
        let sync = Header::default();
        match op {
            KOp::Dma { dst, src } => {
                let (src, dst) = (self.dma_ap(src, op)?, self.dma_ap(dst, op)?);
                let w = costs::dma_work(&src, &dst);
                let queue = dma_queues_for(w.first_engine, src.mem, dst.mem)
                    .min_by_key(|&q| (self.queue_load[q as usize], q))
                    .unwrap_or(0) as usize;
                self.queue_load[queue] += w.cycles();
                let queue = queue as u64;
                let inst = Inst::DmaCopy(DmaCopy {
                    sync,
                    src,
                    dst,
                    queue,
                });
                self.emit(StreamId::Dma(queue as u8), inst);
            }
            KOp::DmaGather {
                dst,
                src,
                index,
                rows,
            } => {
                // The whole table must lie inside its tensor.
                let mut table = src.clone();
                table.part_count = *rows;
                self.dma_ap(&table, op)?;
                let mut g = DmaGather {
                    sync,
                    src: self.dma_ap(src, op)?,
                    dst: self.dma_ap(dst, op)?,
                    index: self.ap(index, op)?,
                    queue: 0,
                    rows: *rows,
                };
                let w = costs::dma_gather_work(&g);
                let queue = dma_queues_for(w.first_engine, Mem::Hbm, g.dst.mem)
                    .min_by_key(|&q| (self.queue_load[q as usize], q))
                    .unwrap_or(0);
                self.queue_load[queue as usize] += w.cycles();
                g.queue = queue;
                self.emit(StreamId::Dma(queue as u8), Inst::DmaGather(g));
            }
            KOp::LoadStationary { src } => {
                let inst = Inst::LoadStationary(LoadStationary {
                    sync,
                    src: self.ap(src, op)?,
                });
                self.emit(StreamId::Tensor, inst);
            }
            KOp::Matmul { dst, moving, acc } => {
                let accumulate = match acc {
                    Accumulate::Never => false,
                    Accumulate::Always => true,
                    Accumulate::AfterFirst(var) => {
                        let (v, start) = *self.env.get(var).ok_or_else(|| {
                            self.fail(op, format!("loop variable ${var} is not bound here"))
                        })?;
                        v != start
                    }
                };
                let inst = Inst::Matmul(Matmul {
                    sync,
                    moving: self.ap(moving, op)?,
                    dst: self.ap(dst, op)?,
                    accumulate,
                });
                self.emit(StreamId::Tensor, inst);
            }
            KOp::Activate {
                dst,
                src,
                func,
                scale,
                bias,
                acc,
            } => {
                let inst = Inst::Activate(Activate {
                    sync,
                    dst: self.ap(dst, op)?,
                    src: self.ap(src, op)?,
                    scale: self.scalar(scale, op)?,
                    bias: self.scalar(bias, op)?,
                    acc: match acc {
                        Some(a) => self.ap(a, op)?,
                        None => Ap::default(),
                    },
                    func: *func,
                    accumulate: acc.is_some(),
                });
                self.emit(StreamId::Scalar, inst);
            }
            KOp::TensorTensor { dst, a, b, op: alu } => {
                let inst = Inst::TensorTensor(TensorTensor {
                    sync,
                    dst: self.ap(dst, op)?,
                    a: self.ap(a, op)?,
                    b: self.ap(b, op)?,
                    op: *alu,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::TensorScalar {
                dst,
                src,
                op0,
                scalar0,
                op1,
                scalar1,
                reverse0,
                reverse1,
            } => {
                let inst = Inst::TensorScalar(TensorScalar {
                    sync,
                    dst: self.ap(dst, op)?,
                    src: self.ap(src, op)?,
                    scalar0: self.scalar(scalar0, op)?,
                    scalar1: self.scalar(scalar1, op)?,
                    op0: *op0,
                    op1: *op1,
                    reverse0: *reverse0,
                    reverse1: *reverse1,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Reduce {
                dst,
                src,
                op: r,
                axes,
                negate,
            } => {
                let inst = Inst::TensorReduce(TensorReduce {
                    sync,
                    dst: self.ap(dst, op)?,
                    src: self.ap(src, op)?,
                    op: *r,
                    axes: *axes,
                    negate: *negate,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Copy { dst, src } => {
                let inst = Inst::TensorCopy(TensorCopy {
                    sync,
                    dst: self.ap(dst, op)?,
                    src: self.ap(src, op)?,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Memset { dst, value } => {
                let inst = Inst::Memset(Memset {
                    sync,
                    dst: self.ap(dst, op)?,
                    value: *value,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Select {
                dst,
                pred,
                on_true,
                on_false,
            } => {
                let inst = Inst::Select(Select {
                    sync,
                    dst: self.ap(dst, op)?,
                    pred: self.ap(pred, op)?,
                    on_true: self.ap(on_true, op)?,
                    on_false: self.ap(on_false, op)?,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Iota {
                dst,
                base,
                part_step,
                steps,
            } => {
                if steps.len() > machine::MAX_FREE_DIMS as usize {
                    return Err(self.fail(
                        op,
                        format!("{} steps, at most {}", steps.len(), machine::MAX_FREE_DIMS),
                    ));
                }
                let s = |i: usize| steps.get(i).copied().unwrap_or(0);
                let inst = Inst::Iota(Iota {
                    sync,
                    dst: self.ap(dst, op)?,
                    base: *base,
                    part_step: *part_step,
                    step0: s(0),
                    step1: s(1),
                    step2: s(2),
                    step3: s(3),
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Transpose32 { dst, src } => {
                let inst = Inst::Transpose32(Transpose32 {
                    sync,
                    dst: self.ap(dst, op)?,
                    src: self.ap(src, op)?,
                });
                self.emit(StreamId::Vector, inst);
            }
            KOp::Gpsimd { dst, srcs, kernel } => {
                if srcs.len() > 3 {
                    return Err(self.fail(
                        op,
                        format!("{} sources, a GpSimd kernel takes at most 3", srcs.len()),
                    ));
                }
                let mut aps = [Ap::default(); 3];
                for (a, v) in aps.iter_mut().zip(srcs) {
                    *a = self.ap(v, op)?;
                }
                let inst = Inst::GpsimdKernel(GpsimdKernel {
                    sync,
                    dst: self.ap(dst, op)?,
                    a: aps[0],
                    b: aps[1],
                    c: aps[2],
                    kernel: u64::from(*kernel),
                    inputs: srcs.len() as u64,
                });
                self.emit(StreamId::Gpsimd, inst);
            }
        }
        Ok(())
    }

    fn body(&mut self, body: &[Stmt]) -> Result<(), Diagnostic> {
        for s in body {
            match s {
                Stmt::Op(op) => self.op(op)?,
                Stmt::Loop {
                    var,
                    start,
                    end,
                    body,
                } => {
                    if self.env.contains_key(var) {
                        return Err(Diagnostic::new(
                            Code::KernelInvalid,
                            format!("loop variable ${var} shadows an enclosing loop's"),
                        )
                        .at_node(self.kernel.name.clone(), self.kernel.op.clone()));
                    }
                    for i in *start..*end {
                        self.env.insert(var.clone(), (i, *start));
                        self.body(body)?;
                    }
                    self.env.remove(var);
                }
            }
        }
        Ok(())
    }
}

/// The queues a DMA over DMA engines from `first_engine` may go to, from `src` to `dst` memory.
/// Queues are in order and a transfer over all partitions already uses every engine, so DMAs
/// are not spread for bandwidth: each direction has its own queues (HBM -> chip half of them,
/// chip -> HBM a quarter, on chip and HBM -> HBM an eighth each), cut into one group per quarter
/// of the engines, and DMAs over the same engines share their group, so they move mostly in
/// program order, the data needed first arriving first (spread over every queue, they would
/// share the engines and delay the first). A load group has two queues, so a load that waits
/// for its buffer to be free holds up only half of the loads behind it.
pub fn dma_queues_for(first_engine: u64, src: Mem, dst: Mem) -> std::ops::Range<u64> {
    let nq = machine::DMA_QUEUES;
    let (start, len) = match (src == Mem::Hbm, dst == Mem::Hbm) {
        (true, false) => (0, nq / 2),
        (false, true) => (nq / 2, nq / 4),
        (false, false) => (nq * 3 / 4, nq / 8),
        (true, true) => (nq * 7 / 8, nq / 8),
    };
    let groups = len.clamp(1, 4);
    let per = (len / groups).max(1);
    let g = (first_engine * groups / machine::DMA_ENGINES.max(1)).min(groups - 1);
    let lo = (start + g * per).min(nq - 1);
    lo..(lo + per).min(nq)
}

/// Unrolls and resolves every kernel, in order.
pub fn flatten(kp: &KernelProgram, layout: &Layout) -> Result<Vec<FlatInst>, Diagnostic> {
    let mut out = Vec::new();
    let mut queue_load = vec![0; machine::DMA_QUEUES as usize];
    let mut next_queue = 0;
    for (kidx, kernel) in kp.kernels.iter().enumerate() {
        let mut cx = Cx {
            kp,
            layout,
            kernel,
            kidx,
            buffers: &layout.buffers[kidx],
            env: BTreeMap::new(),
            queue_load,
            next_queue,
            out: Vec::new(),
        };
        cx.body(&kernel.body)?;
        queue_load = cx.queue_load;
        next_queue = cx.next_queue;
        out.append(&mut cx.out);
    }
    Ok(out)
}
