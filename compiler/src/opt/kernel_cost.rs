//! Predicted cycles of lowered kernels, read off the kernel IR the lowering emits, so the
//! prediction follows the lowering's own tiling, DMA pieces, buffers and per-tile instructions
//! instead of re-deriving them. Every op costs isa-spec's rule for the instruction it becomes
//! ([`costs`]: an engine op pays its fixed cost plus its free size, so a kernel of many small
//! tiles pays the fixed costs per tile; a DMA piece is its [`costs::DmaWork`]: descriptors (one
//! per contiguous run) plus its bytes at its rate share, done by the DMA engines of the
//! partitions it touches, its trigger latency overlapping the pieces ahead of it in its queue).
//!
//! [`schedule_cycles`] list-schedules a kernel alone on the machine: ops in program order with
//! loops unrolled, each on its engine (DMA pieces on the queue of their group that frees first,
//! as codegen chooses, its data starting a trigger latency after it could issue and
//! not before the queue's previous piece and its DMA engines' previous pieces end; a
//! LOAD_STATIONARY after a MATMUL in the background as the timed emulator runs it), starting when its engine is free and the on-chip bytes it reads
//! and writes are no longer in use by earlier ops (the dependencies codegen turns into
//! semaphores). So a loop that reuses one buffer every iteration runs at the pace that buffer
//! allows, and one that rotates buffers overlaps its iterations. It knows nothing of other
//! kernels (no queue or bandwidth sharing with them) and of no data.
//!
//! Kernels too long to unroll (over [`SCHEDULE_MAX_OPS`] ops) get the bound of
//! [`KernelWork::cycles`] instead: their busiest resource (tensor, vector or scalar engine
//! time, DMA engine time spread over all the engines, HBM bandwidth) plus the trigger latencies
//! no resource overlaps.

use crate::codegen::lower_ops::dma_queues_for;
use crate::kernel::{Base, KOp, Kernel, KernelProgram, Stmt, View};
use tahoma_isa::{costs, machine, Dtype, Mem};

/// Resource totals of one kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelWork {
    pub tensor: f64,
    pub vector: f64,
    pub scalar: f64,
    pub gpsimd: f64,
    /// Engine-bytes of work of every DMA piece ([`costs::DmaWork::work`]), summed.
    pub dma_work: f64,
    pub dma_pieces: f64,
    pub hbm_bytes: f64,
}

impl KernelWork {
    /// The kernel's predicted cycles (see the module doc).
    pub fn cycles(&self) -> f64 {
        let dma =
            self.dma_work / (machine::DMA_ENGINES * machine::DMA_ENGINE_BYTES_PER_CYCLE) as f64;
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
        self.dma_work += o.dma_work;
        self.dma_pieces += o.dma_pieces;
        self.hbm_bytes += o.hbm_bytes;
    }

    fn scaled(&self, k: f64) -> KernelWork {
        KernelWork {
            tensor: self.tensor * k,
            vector: self.vector * k,
            scalar: self.scalar * k,
            gpsimd: self.gpsimd * k,
            dma_work: self.dma_work * k,
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

/// The [`costs::DmaWork`] of a DMA op, by the rule codegen's access patterns will be costed by
/// (partition starts that depend on loop variables taken at their constant part).
fn dma_work(p: &KernelProgram, k: &Kernel, dst: &View, src: &View) -> costs::DmaWork {
    let (sm, sd) = mem_dtype(p, k, src);
    let (dm, dd) = mem_dtype(p, k, dst);
    let bytes = (elems(src) * sd.size_bytes()).max(elems(dst) * dd.size_bytes());
    let run = |v: &View, m: Mem| {
        let hbm = (m == Mem::Hbm).then_some((v.part_count, v.part_stride));
        costs::contiguous_elems(&v.dims, hbm)
    };
    let (run_a, run_b) = (run(src, sm), run(dst, dm));
    let esize = sd.size_bytes().max(dd.size_bytes());
    let uses_hbm = sm == Mem::Hbm || dm == Mem::Hbm;
    let on_chip = |v: &View| (v.part_start.constant.max(0) as u64, v.part_count);
    let parts = if dm != Mem::Hbm {
        on_chip(dst)
    } else if sm != Mem::Hbm {
        on_chip(src)
    } else {
        (0, machine::PARTITIONS)
    };
    costs::dma_work_of(
        bytes,
        costs::descriptors(elems(src).max(elems(dst)), run_a, run_b, esize),
        costs::dma_rate_percent(
            strided(src, sd) || strided(dst, dd),
            costs::is_dma_transpose(run_a, run_b, esize),
            uses_hbm,
        ),
        parts,
        uses_hbm,
    )
}

/// The [`costs::DmaWork`] of a row gather: a copy of its rows, one descriptor per row.
fn dma_gather_work(p: &KernelProgram, k: &Kernel, dst: &View, src: &View) -> costs::DmaWork {
    // The rows are scattered: no partition stride continues a run.
    let mut rows = src.clone();
    rows.part_count = dst.part_count;
    rows.part_stride = 0;
    dma_work(p, k, dst, &rows)
}

fn op_work(p: &KernelProgram, k: &Kernel, op: &KOp) -> KernelWork {
    let mut w = KernelWork::default();
    let n = |v: &View| v.free_elems();
    match op {
        KOp::Dma { dst, src } => {
            let d = dma_work(p, k, dst, src);
            w.dma_work = d.work as f64;
            w.dma_pieces = 1.0;
            if d.uses_hbm {
                w.hbm_bytes = d.bytes as f64;
            }
        }
        KOp::DmaGather { dst, src, .. } => {
            let d = dma_gather_work(p, k, dst, src);
            w.dma_work = d.work as f64;
            w.dma_pieces = 1.0;
            w.hbm_bytes = d.bytes as f64;
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
        KOp::DmaGather { dst, index, .. } => vec![(index, false), (dst, true)],
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

/// One resource's busy intervals, sorted and disjoint (a DMA engine: later pieces may fill a gap
/// earlier pieces left, as the engines serve whichever queue has data ready).
#[derive(Clone, Default)]
struct Busy(Vec<(f64, f64)>);

impl Busy {
    /// The end of the interval overlapping `[t, t + len)`, if one does.
    fn conflict(&self, t: f64, len: f64) -> Option<f64> {
        let i = self.0.partition_point(|iv| iv.1 <= t);
        self.0.get(i).filter(|iv| iv.0 < t + len).map(|iv| iv.1)
    }

    fn insert(&mut self, start: f64, end: f64) {
        let i = self.0.partition_point(|iv| iv.0 < start);
        self.0.insert(i, (start, end));
    }
}

/// The earliest time from `t` at which every resource in `rs` is free for `len` cycles.
fn first_gap(rs: &[Busy], mut t: f64, len: f64) -> f64 {
    loop {
        match rs
            .iter()
            .filter_map(|r| r.conflict(t, len))
            .reduce(f64::max)
        {
            Some(end) => t = end,
            None => return t,
        }
    }
}

/// A list schedule of kernel `k` on an otherwise idle machine: ops in program order (loops
/// unrolled), each on its engine (DMA pieces on the queue of their group that frees first, as
/// codegen chooses), starting when its engine is free and the on-chip bytes it
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
        /// Each DMA engine's busy intervals.
        dma_engines: Vec<Busy>,
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
                        KOp::Dma { dst, src } | KOp::DmaGather { dst, src, .. } => {
                            let d = match op {
                                KOp::DmaGather { .. } => dma_gather_work(st.p, st.k, dst, src),
                                _ => dma_work(st.p, st.k, dst, src),
                            };
                            let (sm, _) = mem_dtype(st.p, st.k, src);
                            let (dm, _) = mem_dtype(st.p, st.k, dst);
                            let q = dma_queues_for(d.first_engine, sm, dm)
                                .map(|q| q as usize)
                                .min_by(|&x, &y| st.queues[x].total_cmp(&st.queues[y]))
                                .unwrap_or(0);
                            let lat = machine::DMA_TRIGGER_LATENCY as f64;
                            let engines = &mut st.dma_engines
                                [d.first_engine as usize..(d.first_engine + d.engines) as usize];
                            let c = d.cycles() as f64;
                            let start = first_gap(engines, (ready + lat).max(st.queues[q]), c);
                            engines.iter_mut().for_each(|e| e.insert(start, start + c));
                            st.queues[q] = start + c;
                            (start, c)
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
        dma_engines: vec![Busy::default(); machine::DMA_ENGINES as usize],
        history: HashMap::new(),
        ops: 0,
        end: 0.0,
    };
    run(&mut st, &k.body)?;
    Some(st.end)
}
