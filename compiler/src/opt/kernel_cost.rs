//! Predicted cycles of lowered kernels, read off the kernel IR the lowering emits, so the
//! prediction follows the lowering's own tiling, DMA pieces, buffers and per-tile instructions
//! instead of re-deriving them. Every op costs isa-spec's rule for the instruction it becomes
//! ([`costs`]: an engine op pays its fixed cost plus its free size, so a kernel of many small
//! tiles pays the fixed costs per tile; a DMA piece occupies its queue for its descriptors (one
//! per contiguous run) plus its bytes at one queue's rate, halved when either side is strided,
//! its trigger latency overlapping the pieces ahead of it in the queue).
//!
//! [`schedule_cycles`] list-schedules a kernel alone on the machine: ops in program order with
//! loops unrolled, each on its engine (DMA pieces on the queue that frees first, as codegen's
//! least-loaded round robin does, its data starting a trigger latency after it could issue and
//! not before the queue's previous piece ends; a LOAD_STATIONARY after a MATMUL in the background as the
//! timed emulator runs it), starting when its engine is free and the on-chip bytes it reads
//! and writes are no longer in use by earlier ops (the dependencies codegen turns into
//! semaphores). So a loop that reuses one buffer every iteration runs at the pace that buffer
//! allows, and one that rotates buffers overlaps its iterations. It knows nothing of other
//! kernels (no queue or bandwidth sharing with them) and of no data.
//!
//! Kernels too long to unroll (over [`SCHEDULE_MAX_OPS`] ops) get the bound of
//! [`KernelWork::cycles`] instead: their busiest resource (tensor, vector or scalar engine
//! time, DMA queue time spread over `min(DMA_QUEUES, pieces)` queues, HBM bandwidth) plus the
//! trigger latencies no resource overlaps.

use crate::kernel::{Base, KOp, Kernel, KernelProgram, Stmt, View};
use tahoma_isa::{costs, machine, Dtype, Mem};

/// Resource totals of one kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelWork {
    pub tensor: f64,
    pub vector: f64,
    pub scalar: f64,
    pub gpsimd: f64,
    /// Queue occupancy of every DMA piece (descriptors plus transfer, latency excluded), summed.
    pub dma_queue: f64,
    pub dma_pieces: f64,
    pub hbm_bytes: f64,
}

impl KernelWork {
    /// The kernel's predicted cycles (see the module doc).
    pub fn cycles(&self) -> f64 {
        let queues = self.dma_pieces.clamp(1.0, machine::DMA_QUEUES as f64);
        let dma = self.dma_queue / queues;
        let hbm = self.hbm_bytes / machine::HBM_BYTES_PER_CYCLE as f64;
        let compute = [self.tensor, self.vector, self.scalar, self.gpsimd]
            .into_iter()
            .fold(0.0, f64::max);
        if self.dma_pieces == 0.0 {
            return compute;
        }
        // The first load's latency comes before any compute and the last store's after it;
        // the latencies of later pieces overlap the pieces ahead of them in their queues.
        let lat = machine::DMA_TRIGGER_LATENCY as f64;
        (compute + 2.0 * lat).max(dma + lat).max(hbm + 2.0 * lat)
    }

    fn add(&mut self, o: &KernelWork) {
        self.tensor += o.tensor;
        self.vector += o.vector;
        self.scalar += o.scalar;
        self.gpsimd += o.gpsimd;
        self.dma_queue += o.dma_queue;
        self.dma_pieces += o.dma_pieces;
        self.hbm_bytes += o.hbm_bytes;
    }

    fn scaled(&self, k: f64) -> KernelWork {
        KernelWork {
            tensor: self.tensor * k,
            vector: self.vector * k,
            scalar: self.scalar * k,
            gpsimd: self.gpsimd * k,
            dma_queue: self.dma_queue * k,
            dma_pieces: self.dma_pieces * k,
            hbm_bytes: self.hbm_bytes * k,
        }
    }
}

/// Where a view lives and in which dtype.
fn mem_dtype(p: &KernelProgram, k: &Kernel, v: &View) -> (Mem, Dtype) {
    match &v.base {
        Base::Hbm(t) => (Mem::Hbm, p.tensor(t).map_or(Dtype::Fp32, |t| t.dtype)),
        Base::Buf(b) => k
            .buffer(b)
            .map_or((Mem::Sbuf, Dtype::Fp32), |b| (b.mem, b.dtype)),
    }
}

/// Elements a view covers (all partitions).
fn elems(v: &View) -> u64 {
    v.part_count.max(1) * v.free_elems()
}

/// Whether consecutive elements of a view lie further apart than the stride penalty allows
/// (isa-spec's `dma_strided`, on the view before codegen turns it into an access pattern).
fn strided(v: &View, dtype: Dtype) -> bool {
    let inner = v
        .dims
        .iter()
        .rev()
        .find(|d| d.0 > 1)
        .map(|d| d.1)
        .or_else(|| (matches!(v.base, Base::Hbm(_)) && v.part_count > 1).then_some(v.part_stride));
    inner.is_some_and(|s| s.unsigned_abs() * dtype.size_bytes() > machine::STRIDE_PENALTY_BYTES)
}

fn op_work(p: &KernelProgram, k: &Kernel, op: &KOp) -> KernelWork {
    let mut w = KernelWork::default();
    let n = |v: &View| v.free_elems();
    match op {
        KOp::Dma { dst, src } => {
            let (sm, sd) = mem_dtype(p, k, src);
            let (dm, dd) = mem_dtype(p, k, dst);
            let bytes = (elems(src) * sd.size_bytes()).max(elems(dst) * dd.size_bytes());
            let slow = if strided(src, sd) || strided(dst, dd) {
                machine::STRIDE_PENALTY_FACTOR
            } else {
                1
            };
            let run = |v: &View, m: Mem| {
                let hbm = (m == Mem::Hbm).then_some((v.part_count, v.part_stride));
                costs::contiguous_elems(&v.dims, hbm)
            };
            let desc = costs::descriptors(
                elems(src).max(elems(dst)),
                run(src, sm),
                run(dst, dm),
                sd.size_bytes().max(dd.size_bytes()),
            );
            w.dma_queue = costs::dma_queue_cycles(bytes, desc, slow) as f64;
            w.dma_pieces = 1.0;
            if sm == Mem::Hbm || dm == Mem::Hbm {
                w.hbm_bytes = bytes as f64;
            }
        }
        KOp::LoadStationary { .. } => {}
        KOp::Matmul { moving, .. } => {
            let (_, d) = mem_dtype(p, k, moving);
            w.tensor = costs::matmul_cycles(n(moving), d) as f64;
        }
        KOp::Activate { dst, .. } => w.scalar = costs::scalar_cycles(n(dst), 1) as f64,
        KOp::TensorTensor { dst, .. } => w.vector = costs::vector_cycles(n(dst), 2, 1) as f64,
        KOp::Select { dst, .. } => w.vector = costs::vector_cycles(n(dst), 3, 1) as f64,
        KOp::Reduce { src, .. } => w.vector = costs::vector_cycles(n(src), 1, 1) as f64,
        KOp::TensorScalar { dst, .. }
        | KOp::Copy { dst, .. }
        | KOp::Memset { dst, .. }
        | KOp::Iota { dst, .. }
        | KOp::Transpose32 { dst, .. } => w.vector = costs::vector_cycles(n(dst), 1, 1) as f64,
        KOp::Gpsimd { dst, kernel, .. } => {
            let ops = p
                .gpsimd
                .get(*kernel as usize)
                .map_or(1, |g| u64::from(g.ops_per_elem));
            let start = dst
                .part_start
                .terms
                .is_empty()
                .then_some(dst.part_start.constant);
            let start = start.map_or(0, |s| s.max(0) as u64);
            w.gpsimd = costs::gpsimd_cycles(start, dst.part_count, n(dst), ops, 1) as f64;
        }
    }
    w
}

fn body_work(p: &KernelProgram, k: &Kernel, body: &[Stmt]) -> KernelWork {
    let mut w = KernelWork::default();
    for s in body {
        match s {
            Stmt::Op(op) => w.add(&op_work(p, k, op)),
            Stmt::Loop {
                start, end, body, ..
            } => {
                let trips = (end - start).max(0) as f64;
                w.add(&body_work(p, k, body).scaled(trips));
            }
        }
    }
    w
}

/// The views an op reads (`false`) and writes (`true`).
fn touches_of(op: &KOp) -> Vec<(&View, bool)> {
    match op {
        KOp::Dma { dst, src } | KOp::Copy { dst, src } | KOp::Transpose32 { dst, src } => {
            vec![(src, false), (dst, true)]
        }
        KOp::LoadStationary { src } => vec![(src, false)],
        KOp::Matmul { dst, moving, .. } => vec![(moving, false), (dst, true)],
        KOp::Activate {
            dst,
            src,
            scale,
            bias,
            acc,
            ..
        } => {
            let mut v = vec![(src, false), (dst, true)];
            for a in [scale, bias] {
                if let crate::kernel::ScalarArg::PerPartition(x) = a {
                    v.push((x, false));
                }
            }
            if let Some(a) = acc {
                v.push((a, true));
            }
            v
        }
        KOp::TensorTensor { dst, a, b, .. } => vec![(a, false), (b, false), (dst, true)],
        KOp::TensorScalar {
            dst,
            src,
            scalar0,
            scalar1,
            ..
        } => {
            let mut v = vec![(src, false), (dst, true)];
            for a in [scalar0, scalar1] {
                if let crate::kernel::ScalarArg::PerPartition(x) = a {
                    v.push((x, false));
                }
            }
            v
        }
        KOp::Reduce { dst, src, .. } => vec![(src, false), (dst, true)],
        KOp::Gpsimd { dst, srcs, .. } => {
            let mut v: Vec<(&View, bool)> = srcs.iter().map(|x| (x, false)).collect();
            v.push((dst, true));
            v
        }
        KOp::Memset { dst, .. } | KOp::Iota { dst, .. } => vec![(dst, true)],
        KOp::Select {
            dst,
            pred,
            on_true,
            on_false,
        } => vec![
            (pred, false),
            (on_true, false),
            (on_false, false),
            (dst, true),
        ],
    }
}

/// The resource totals of kernel `k` of program `p`.
pub fn kernel_work(p: &KernelProgram, k: &Kernel) -> KernelWork {
    body_work(p, k, &k.body)
}

/// Predicted cycles of every kernel of `p`, summed by kernel name (the ONNX node a kernel
/// implements; a node lowered to several kernels pays for all of them).
pub fn kernel_cycles_by_name(p: &KernelProgram) -> std::collections::HashMap<String, f64> {
    let mut m = std::collections::HashMap::new();
    for k in &p.kernels {
        let c = schedule_cycles(p, k).unwrap_or_else(|| kernel_work(p, k).cycles());
        *m.entry(k.name.clone()).or_insert(0.0) += c;
    }
    m
}

/// Most ops [`schedule_cycles`] unrolls before giving up (the resource bound is used then).
const SCHEDULE_MAX_OPS: usize = 50_000;

/// Accesses kept per buffer for dependency checks (older ones are assumed complete).
const SCHEDULE_HISTORY: usize = 48;

/// One on-chip access: partitions, element range, when it ends, and whether it writes.
#[derive(Clone, Copy)]
struct Access {
    parts: (i64, i64),
    elems: (i64, i64),
    end: f64,
    write: bool,
}

/// Where a resolved view lies in its buffer.
fn extent(v: &View, env: &std::collections::BTreeMap<String, i64>) -> Option<Access> {
    let ps = v.part_start.eval(env).ok()?;
    let off = v.offset.eval(env).ok()?;
    let (mut lo, mut hi) = (off, off);
    for &(size, stride) in &v.dims {
        let span = (size as i64 - 1).max(0) * stride;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    Some(Access {
        parts: (ps, ps + v.part_count.max(1) as i64),
        elems: (lo, hi + 1),
        end: 0.0,
        write: false,
    })
}

fn overlaps(a: &Access, b: &Access) -> bool {
    a.parts.0 < b.parts.1 && b.parts.0 < a.parts.1 && a.elems.0 < b.elems.1 && b.elems.0 < a.elems.1
}

/// A list schedule of kernel `k` on an otherwise idle machine: ops in program order (loops
/// unrolled), each on its engine (DMA pieces on the queue that frees first, as codegen's
/// least-loaded round robin does), starting when its engine is free and the on-chip bytes it
/// reads were written (and the bytes it writes were read and written) by the ops before it —
/// the dependencies codegen turns into semaphores. Costs are isa-spec's per instruction.
/// Returns when the last op ends, or `None` when the kernel unrolls to more than
/// [`SCHEDULE_MAX_OPS`] ops.
pub fn schedule_cycles(p: &KernelProgram, k: &Kernel) -> Option<f64> {
    use std::collections::{BTreeMap, HashMap};
    struct St<'a> {
        p: &'a KernelProgram,
        k: &'a Kernel,
        env: BTreeMap<String, i64>,
        engines: [f64; 4],
        /// Tensor engine: when the stationary load in flight ends, whether the previous op
        /// was a MATMUL (a LOAD_STATIONARY after it may start as soon as it started) and when
        /// that MATMUL started.
        ls_until: f64,
        prev_matmul: bool,
        mm_start: f64,
        queues: Vec<f64>,
        history: HashMap<String, Vec<Access>>,
        ops: usize,
        end: f64,
    }
    fn run(st: &mut St, body: &[Stmt]) -> Option<()> {
        for s in body {
            match s {
                Stmt::Loop {
                    var,
                    start,
                    end,
                    body,
                } => {
                    for i in *start..*end {
                        st.env.insert(var.clone(), i);
                        run(st, body)?;
                    }
                    st.env.remove(var);
                }
                Stmt::Op(op) => {
                    st.ops += 1;
                    if st.ops > SCHEDULE_MAX_OPS {
                        return None;
                    }
                    let w = op_work(st.p, st.k, op);
                    let mut accesses = Vec::new();
                    for (v, write) in touches_of(op) {
                        if let Base::Buf(b) = &v.base {
                            let mut a = extent(v, &st.env)?;
                            a.write = write;
                            accesses.push((b.clone(), a));
                        }
                    }
                    let mut ready: f64 = 0.0;
                    for (b, a) in &accesses {
                        if let Some(h) = st.history.get(b) {
                            for prev in h.iter().filter(|x| overlaps(x, a)) {
                                if a.write || prev.write {
                                    ready = ready.max(prev.end);
                                }
                            }
                        }
                    }
                    let (start, cycles) = match op {
                        KOp::Dma { .. } => {
                            let q = (0..st.queues.len())
                                .min_by(|&x, &y| st.queues[x].total_cmp(&st.queues[y]))
                                .unwrap_or(0);
                            let lat = machine::DMA_TRIGGER_LATENCY as f64;
                            let start = (ready + lat).max(st.queues[q]);
                            st.queues[q] = start + w.dma_queue;
                            (start, w.dma_queue)
                        }
                        KOp::LoadStationary { src } => {
                            let (_, d) = mem_dtype(st.p, st.k, src);
                            let c = costs::load_stationary_cycles(src.free_elems(), d) as f64;
                            let start = if st.prev_matmul {
                                ready.max(st.ls_until).max(st.mm_start)
                            } else {
                                ready.max(st.ls_until).max(st.engines[0])
                            };
                            st.ls_until = start + c;
                            if !st.prev_matmul {
                                st.engines[0] = start + c;
                            }
                            st.prev_matmul = false;
                            (start, c)
                        }
                        _ => {
                            let e = if w.tensor > 0.0 {
                                0
                            } else if w.scalar > 0.0 {
                                1
                            } else if w.gpsimd > 0.0 {
                                3
                            } else {
                                2
                            };
                            let c = w.tensor + w.scalar + w.vector + w.gpsimd;
                            let mut start = ready.max(st.engines[e]);
                            if e == 0 {
                                start = start.max(st.ls_until);
                                st.prev_matmul = true;
                                st.mm_start = start;
                            }
                            st.engines[e] = start + c;
                            (start, c)
                        }
                    };
                    let end = start + cycles;
                    st.end = st.end.max(end);
                    for (b, mut a) in accesses {
                        a.end = end;
                        let h = st.history.entry(b).or_default();
                        h.push(a);
                        if h.len() > SCHEDULE_HISTORY {
                            h.remove(0);
                        }
                    }
                }
            }
        }
        Some(())
    }
    let mut st = St {
        p,
        k,
        env: BTreeMap::new(),
        engines: [0.0; 4],
        ls_until: 0.0,
        prev_matmul: false,
        mm_start: 0.0,
        queues: vec![0.0; machine::DMA_QUEUES as usize],
        history: HashMap::new(),
        ops: 0,
        end: 0.0,
    };
    run(&mut st, &k.body)?;
    Some(st.end)
}
