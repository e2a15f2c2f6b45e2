//! Cycle costs of instructions, from the spec's `[cost]` and `[machine]` parameters. The emulator's
//! timed mode and the compiler's cost model both call these; nothing else knows a latency.

use crate::program::GpsimdKernel;
use crate::{cost, machine, Ap, DmaAp, Dtype, Inst, Mem};

/// What an instruction costs on its engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Busy for this many cycles.
    Cycles(u64),
    /// A DMA ([`DmaWork`]): its data starts moving the trigger latency after issue (overlapping
    /// the transfers ahead in its queue), once the transfer ahead of it in its queue is done.
    Dma(DmaWork),
}

/// What one DMA asks of the DMA engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaWork {
    /// Bytes moved.
    pub bytes: u64,
    /// Engine-bytes of work: the bytes divided by the access's rate share (stride penalty, DMA
    /// transpose) plus, per descriptor, the bytes an engine could have moved in
    /// `dma_descriptor_cycles`.
    pub work: u64,
    /// The first DMA engine the transfer uses and how many (the engines of the partitions it
    /// touches, each serving `partitions / dma_engines` of them).
    pub first_engine: u64,
    pub engines: u64,
    /// Whether a side is in HBM (the transfer then shares `hbm_bytes_per_cycle`).
    pub uses_hbm: bool,
}

impl DmaWork {
    /// Cycles the transfer's engines take for it on an otherwise idle machine, trigger latency
    /// excluded.
    pub fn cycles(&self) -> u64 {
        let rate = self.engines.max(1) * machine::DMA_ENGINE_BYTES_PER_CYCLE;
        let rate = if self.uses_hbm {
            rate.min(machine::HBM_BYTES_PER_CYCLE)
        } else {
            rate
        };
        self.work.div_ceil(rate.max(1))
    }

    /// Cycles from issue to completion on an otherwise idle machine.
    pub fn cycles_alone(&self) -> u64 {
        machine::DMA_TRIGGER_LATENCY + self.cycles()
    }
}

/// Partitions each DMA engine serves.
pub fn dma_engine_partitions() -> u64 {
    machine::PARTITIONS.div_ceil(machine::DMA_ENGINES).max(1)
}

/// The DMA engines (first, count) serving partitions `part_start .. part_start + part_count`.
pub fn dma_engines_of(part_start: u64, part_count: u64) -> (u64, u64) {
    let per = dma_engine_partitions();
    let first = (part_start / per).min(machine::DMA_ENGINES - 1);
    let last = ((part_start + part_count.max(1) - 1) / per).min(machine::DMA_ENGINES - 1);
    (first, last - first + 1)
}

/// The work of a DMA of `bytes` in `descriptors` descriptors at `rate_percent` of the engine
/// rate, over the engines of partitions `parts` (start, count).
pub fn dma_work_of(
    bytes: u64,
    descriptors: u64,
    rate_percent: u64,
    parts: (u64, u64),
    uses_hbm: bool,
) -> DmaWork {
    let (first_engine, engines) = dma_engines_of(parts.0, parts.1);
    DmaWork {
        bytes,
        work: (bytes * 100).div_ceil(rate_percent.clamp(1, 100))
            + descriptors * machine::DMA_DESCRIPTOR_CYCLES * machine::DMA_ENGINE_BYTES_PER_CYCLE,
        first_engine,
        engines,
        uses_hbm,
    }
}

/// The partitions (start, count) whose engines serve a DMA: its on-chip side (the destination
/// when both are), or all partitions for a copy within HBM.
pub fn dma_parts(src: &DmaAp, dst: &DmaAp) -> (u64, u64) {
    if dst.mem != Mem::Hbm {
        (dst.part_start, dst.part_count)
    } else if src.mem != Mem::Hbm {
        (src.part_start, src.part_count)
    } else {
        (0, machine::PARTITIONS)
    }
}

/// [`DmaWork`] of a DMA instruction's access patterns.
pub fn dma_work(src: &DmaAp, dst: &DmaAp) -> DmaWork {
    let (run_a, run_b) = (dma_contiguous_elems(src), dma_contiguous_elems(dst));
    let esize = src.dtype.size_bytes().max(dst.dtype.size_bytes());
    let uses_hbm = src.mem == Mem::Hbm || dst.mem == Mem::Hbm;
    dma_work_of(
        dma_bytes(src).max(dma_bytes(dst)),
        descriptors(src.elems().max(dst.elems()), run_a, run_b, esize),
        dma_rate_percent(
            dma_strided(src) || dma_strided(dst),
            is_dma_transpose(run_a, run_b, esize),
            uses_hbm,
        ),
        dma_parts(src, dst),
        uses_hbm,
    )
}

/// [`DmaWork`] of a DMA_GATHER: one descriptor per gathered row (its elements contiguous on
/// both sides; a strided row one per run), over the engines of dst's partitions.
pub fn dma_gather_work(x: &crate::DmaGather) -> DmaWork {
    let rows = x.dst.part_count.max(1);
    let (run_a, run_b) = (dma_contiguous_elems(&x.src), dma_contiguous_elems(&x.dst));
    let esize = x.src.dtype.size_bytes().max(x.dst.dtype.size_bytes());
    let row = x.src.free_elems();
    let strided = dma_strided(&x.src) || dma_strided(&x.dst);
    dma_work_of(
        rows * row * esize,
        rows * descriptors(row, run_a, run_b, esize),
        dma_rate_percent(strided, false, true),
        (x.dst.part_start, x.dst.part_count),
        true,
    )
}

/// Whether a DMA whose sides move runs of `run_a` and `run_b` elements of `esize` bytes is a DMA
/// transpose: single elements against runs, 2- or 4-byte types (research/trainium.md, section 2).
pub fn is_dma_transpose(run_a: u64, run_b: u64, esize: u64) -> bool {
    run_a.min(run_b) <= 1 && run_a.max(run_b) > 1 && dma_transposes(esize)
}

/// Whether the DMA engines transpose elements of `esize` bytes (2- and 4-byte types).
pub fn dma_transposes(esize: u64) -> bool {
    matches!(esize, 2 | 4)
}

/// The share (percent) of the engine rate a DMA reaches: a DMA transpose its spec percentage
/// (HBM or on chip), another access that does not stream 1 / `stride_penalty_factor`, else all.
pub fn dma_rate_percent(strided: bool, transpose: bool, uses_hbm: bool) -> u64 {
    if transpose {
        if uses_hbm {
            machine::DMA_TRANSPOSE_HBM_RATE_PERCENT
        } else {
            machine::DMA_TRANSPOSE_SBUF_RATE_PERCENT
        }
    } else if strided {
        100 / machine::STRIDE_PENALTY_FACTOR.max(1)
    } else {
        100
    }
}

fn ceil(x: f64) -> u64 {
    x.ceil() as u64
}

/// True when the innermost free stride of `ap` exceeds the port's fast-stride limit.
pub fn strided(ap: &Ap) -> bool {
    ap.dims().last().is_some_and(|&(_, st)| {
        st.unsigned_abs() * ap.dtype.size_bytes() > machine::STRIDE_PENALTY_BYTES
    })
}

fn stride_factor(aps: &[&Ap]) -> u64 {
    if aps.iter().any(|a| strided(a)) {
        machine::STRIDE_PENALTY_FACTOR
    } else {
        1
    }
}

/// MATMUL streaming `n` moving columns of `dtype`.
pub fn matmul_cycles(n: u64, dtype: Dtype) -> u64 {
    let f = if dtype == Dtype::Fp32 {
        cost::MATMUL_FP32_FACTOR
    } else {
        1
    };
    ceil(n.max(cost::MATMUL_MIN_FREE) as f64 * cost::MATMUL_CYCLES_PER_COL) * f
}

/// LOAD_STATIONARY of `m` stationary columns of `dtype`.
pub fn load_stationary_cycles(m: u64, dtype: Dtype) -> u64 {
    let f = if dtype == Dtype::Fp32 {
        cost::MATMUL_FP32_FACTOR
    } else {
        1
    };
    ceil(
        m.max(cost::MATMUL_MIN_FREE) as f64 * cost::MATMUL_CYCLES_PER_COL
            / cost::LOAD_STATIONARY_SPEEDUP as f64,
    ) * f
}

/// A vector-engine instruction over `n` free elements per partition reading `inputs` tensors.
pub fn vector_cycles(n: u64, inputs: u64, stride_factor: u64) -> u64 {
    cost::VECTOR_FIXED + n.max(cost::VECTOR_MIN_FREE) * inputs.max(1) * stride_factor
}

/// A scalar-engine ACTIVATE over `n` free elements per partition.
pub fn scalar_cycles(n: u64, stride_factor: u64) -> u64 {
    cost::SCALAR_FIXED + n.max(cost::SCALAR_MIN_FREE) * stride_factor
}

/// A GPSIMD_KERNEL over `parts` partitions starting at `part_start` with `n` free elements
/// each, running a kernel of `ops` ops per element: every core works on the partitions it owns
/// with its lanes, so the busiest core sets the time.
pub fn gpsimd_cycles(part_start: u64, parts: u64, n: u64, ops: u64, stride_factor: u64) -> u64 {
    let per_core = machine::GPSIMD_CORE_PARTITIONS;
    let busiest = (0..machine::GPSIMD_CORES)
        .map(|core| {
            let (lo, hi) = (core * per_core, (core + 1) * per_core);
            let (a, b) = (part_start.max(lo), (part_start + parts).min(hi));
            b.saturating_sub(a)
        })
        .max()
        .unwrap_or(0);
    let steps = (busiest * n).div_ceil(machine::GPSIMD_LANES);
    cost::GPSIMD_FIXED + steps * ops.max(1) * cost::GPSIMD_CYCLES_PER_OP * stride_factor
}

/// Elements of the contiguous runs a DMA access moves in its enumeration order: its inner free
/// dims (`dims` outermost first, (size, stride) in elements) while each one's stride is the
/// product of the sizes inside it (dims of one element skipped), then, when every free dim is
/// contiguous, the partitions too if `hbm_parts` (HBM: partition count and stride) continues the
/// run. Rows of different partitions of SBUF or PSUM are never contiguous.
pub fn contiguous_elems(dims: &[(u64, i64)], hbm_parts: Option<(u64, i64)>) -> u64 {
    let mut run = 1u64;
    for &(size, stride) in dims.iter().rev() {
        if size <= 1 {
            continue;
        }
        if stride != run as i64 {
            return run;
        }
        run *= size;
    }
    match hbm_parts {
        Some((count, stride)) if count > 1 && stride == run as i64 => run * count,
        _ => run,
    }
}

/// [`contiguous_elems`] of a DMA access pattern.
pub fn dma_contiguous_elems(ap: &DmaAp) -> u64 {
    let hbm = (ap.mem == Mem::Hbm).then_some((ap.part_count, ap.part_stride));
    contiguous_elems(&ap.dims(), hbm)
}

/// Descriptors of a DMA of `elems` elements of `esize` bytes whose sides move contiguous runs of
/// `run_a` and `run_b` elements. A transfer is a scatter-gather list of contiguous buffers
/// (research/trainium.md, section 2): one descriptor per run contiguous on both sides, counted
/// as the shorter side's runs (exact when the shorter run divides the longer, as it does when
/// both sides share their inner dim sizes). One exception, the DMA transpose of 2- and 4-byte
/// types (same section): a side moving single elements against runs on the other side is
/// transposed by the engine, one descriptor per run of the streaming side (at the transpose's
/// rate, [`dma_rate_percent`]).
pub fn descriptors(elems: u64, run_a: u64, run_b: u64, esize: u64) -> u64 {
    let (short, long) = (run_a.min(run_b).max(1), run_a.max(run_b).max(1));
    let run = if is_dma_transpose(run_a, run_b, esize) {
        long
    } else {
        short
    };
    elems.div_ceil(run).max(1)
}

/// The stride of consecutive elements of a DMA access in its enumeration order, in elements:
/// the innermost free dim of more than one element, else (HBM only) the partition stride.
/// `None` when the access moves one element per partition on chip, or one element in all.
pub fn dma_inner_stride(ap: &DmaAp) -> Option<i64> {
    if let Some(&(_, st)) = ap.dims().iter().rev().find(|d| d.0 > 1) {
        return Some(st);
    }
    (ap.mem == Mem::Hbm && ap.part_count > 1).then_some(ap.part_stride)
}

/// True when a DMA access does not stream: consecutive elements lie more than
/// `stride_penalty_bytes` apart.
pub fn dma_strided(ap: &DmaAp) -> bool {
    dma_inner_stride(ap)
        .is_some_and(|st| st.unsigned_abs() * ap.dtype.size_bytes() > machine::STRIDE_PENALTY_BYTES)
}

/// Bytes a DMA access moves.
pub fn dma_bytes(ap: &DmaAp) -> u64 {
    ap.elems().saturating_mul(ap.dtype.size_bytes())
}

/// The cost of one instruction by the spec's rule for it; `kernels` is the program's GpSimd
/// kernel table (a GPSIMD_KERNEL costs by its kernel's op count).
pub fn inst_cost(inst: &Inst, kernels: &[GpsimdKernel]) -> Cost {
    Cost::Cycles(match inst {
        Inst::Nop(_) | Inst::End(_) => cost::CONTROL_CYCLES,
        Inst::LoadStationary(x) => load_stationary_cycles(x.src.free_elems(), x.src.dtype),
        Inst::Matmul(x) => {
            matmul_cycles(x.moving.free_elems(), x.moving.dtype) * stride_factor(&[&x.moving])
        }
        Inst::TensorTensor(x) => {
            vector_cycles(x.dst.free_elems(), 2, stride_factor(&[&x.dst, &x.a, &x.b]))
        }
        Inst::TensorScalar(x) => {
            vector_cycles(x.dst.free_elems(), 1, stride_factor(&[&x.dst, &x.src]))
        }
        Inst::TensorReduce(x) => vector_cycles(x.src.free_elems(), 1, stride_factor(&[&x.src])),
        Inst::TensorCopy(x) => {
            vector_cycles(x.dst.free_elems(), 1, stride_factor(&[&x.dst, &x.src]))
        }
        Inst::Select(x) => vector_cycles(
            x.dst.free_elems(),
            3,
            stride_factor(&[&x.dst, &x.pred, &x.on_true, &x.on_false]),
        ),
        Inst::Memset(x) => vector_cycles(x.dst.free_elems(), 1, stride_factor(&[&x.dst])),
        Inst::Iota(x) => vector_cycles(x.dst.free_elems(), 1, stride_factor(&[&x.dst])),
        Inst::Transpose32(x) => vector_cycles(x.dst.free_elems(), 1, 1),
        Inst::GpsimdKernel(x) => {
            let ops = kernels
                .get(x.kernel as usize)
                .map_or(1, |k| u64::from(k.ops_per_elem));
            let aps = [&x.dst, &x.a, &x.b, &x.c];
            gpsimd_cycles(
                x.dst.part_start,
                x.dst.part_count,
                x.dst.free_elems(),
                ops,
                stride_factor(&aps[..=x.inputs.min(3) as usize]),
            )
        }
        Inst::Activate(x) => scalar_cycles(x.dst.free_elems(), stride_factor(&[&x.dst, &x.src])),
        Inst::DmaCopy(x) => return Cost::Dma(dma_work(&x.src, &x.dst)),
        Inst::DmaGather(x) => return Cost::Dma(dma_gather_work(x)),
    })
}

/// Multiply-accumulates an instruction performs (MATMUL only).
pub fn inst_macs(inst: &Inst, stationary_cols: u64) -> u64 {
    match inst {
        Inst::Matmul(x) => x.moving.part_count * x.moving.free_elems() * stationary_cols,
        _ => 0,
    }
}

/// Peak multiply-accumulates per core cycle at a precision (16-bit or fp32 operands).
pub fn peak_macs_per_cycle(dtype: Dtype) -> f64 {
    let f = if dtype == Dtype::Fp32 {
        cost::MATMUL_FP32_FACTOR
    } else {
        1
    };
    (machine::PE_ROWS * machine::PE_COLS * machine::PE_CLOCK_RATIO) as f64 / f as f64
}

/// Roofline cycles: max(MACs / peak, compulsory HBM bytes / HBM bandwidth).
pub fn roofline_cycles(macs: u64, compulsory_hbm_bytes: u64, dtype: Dtype) -> u64 {
    let compute = macs as f64 / peak_macs_per_cycle(dtype);
    let memory = compulsory_hbm_bytes as f64 / machine::HBM_BYTES_PER_CYCLE as f64;
    ceil(compute.max(memory))
}

/// Converts cycles to microseconds at the core clock.
pub fn cycles_to_us(cycles: f64) -> f64 {
    cycles / (machine::CORE_CLOCK_GHZ * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_runs_follow_the_inner_dims_and_hbm_partitions() {
        // A row-major [rows, cols] tile: one run per partition on chip, one run in all in HBM.
        assert_eq!(contiguous_elems(&[(64, 1)], None), 64);
        assert_eq!(contiguous_elems(&[(64, 1)], Some((128, 64))), 64 * 128);
        // Rows of a wider matrix: runs of the row length.
        assert_eq!(contiguous_elems(&[(64, 1)], Some((128, 1024))), 64);
        // Blocks of 32 out of rows of 1024; a unit dim does not break the run.
        assert_eq!(contiguous_elems(&[(16, 1024), (1, 7), (32, 1)], None), 32);
        // An element-strided access.
        assert_eq!(contiguous_elems(&[(64, 128)], None), 1);
    }

    #[test]
    fn descriptors_are_runs_contiguous_on_both_sides_and_dma_transposes_stream() {
        // 128 partition rows of 512 elements into one contiguous HBM run: 128 descriptors.
        assert_eq!(descriptors(128 * 512, 512, 128 * 512, 2), 128);
        // 64-byte runs on one side: one descriptor per run.
        assert_eq!(descriptors(128 * 512, 512, 32, 2), 128 * 16);
        // A transpose of 2-byte elements: one per run of the streaming side; 1-byte elements
        // have no DMA transpose and take one descriptor per element.
        assert_eq!(descriptors(128 * 512, 512, 1, 2), 128);
        assert_eq!(descriptors(128 * 512, 512, 1, 1), 128 * 512);
    }

    #[test]
    fn a_dma_uses_the_engines_of_its_partitions() {
        let per = dma_engine_partitions();
        assert_eq!(
            dma_engines_of(0, machine::PARTITIONS),
            (0, machine::DMA_ENGINES)
        );
        assert_eq!(dma_engines_of(per, 1), (1, 1));
        assert_eq!(dma_engines_of(per - 1, 2), (0, 2));
        // One engine: 32 cycles per descriptor, then the bytes at the engine rate.
        let w = dma_work_of(4096, 1, 100, (0, 1), true);
        assert_eq!(
            w.cycles(),
            machine::DMA_DESCRIPTOR_CYCLES + 4096 / machine::DMA_ENGINE_BYTES_PER_CYCLE
        );
        // All engines share one transfer's work; a stride-penalised one does twice the work.
        let all = dma_work_of(1 << 20, 0, 100, (0, machine::PARTITIONS), true);
        let slow = dma_work_of(
            1 << 20,
            0,
            dma_rate_percent(true, false, true),
            (0, machine::PARTITIONS),
            true,
        );
        assert_eq!(slow.cycles(), all.cycles() * machine::STRIDE_PENALTY_FACTOR);
    }
}
