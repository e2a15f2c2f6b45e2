//! The closed-form cycle estimate of one node ([`op_cycles`]), from isa-spec's parameters only
//! (no hardware number is written here), and the per-node predictions `tahoma bench` ranks.
//! The optimizer costs nodes by the kernel IR they lower to ([`super::node_cost`]); it falls
//! back on [`op_cycles`] for a node that does not lower alone. The closed form follows the
//! lowering, where every node is one kernel that reads its operands from HBM and writes its
//! result back:
//!
//! * tensor engine (MatMul, Gemm, Conv, FusedConv): MACs / peak MACs per cycle at the operand
//!   precision ([`costs::peak_macs_per_cycle`]: `PE_ROWS * PE_COLS * PE_CLOCK_RATIO`, slower
//!   for fp32), plus one scalar-engine pass evacuating PSUM (with a fused activation, free) and
//!   one vector pass adding Gemm's C or a fused residual;
//! * scalar engine (activations) and vector engine (arithmetic, reductions, normalisations):
//!   [`costs::scalar_cycles`] / [`costs::vector_cycles`] over the elements per partition;
//! * DMA: every operand and the result cross HBM once, at `HBM_BYTES_PER_CYCLE`, plus the
//!   trigger latency of the first load and of the final store;
//! * a kernel costs `max(compute, DMA streaming) + latencies`;
//! * Reshape and Identity are aliases (zero), and a node computed only from weights is folded
//!   at compile time (zero).

use crate::graph::{Op, TensorType};
use crate::lower::Precision;
use tahoma_isa::{costs, machine};

fn per_partition(numel: usize) -> u64 {
    (numel as u64).div_ceil(machine::PARTITIONS)
}

fn bytes(t: &TensorType) -> u64 {
    (t.numel() * t.dtype.size_bytes()) as u64
}

/// Multiply-accumulates of a MatMul/Gemm with these operand and output types.
pub fn macs(op: Op, ins: &[&TensorType], out: &TensorType) -> u64 {
    let k = match (op, ins) {
        (Op::MatMul, [a, ..]) => a.shape.last().copied().unwrap_or(1),
        (Op::Gemm | Op::FusedGemm, [a, b, ..]) => {
            // K is the dim the two operands share; Gemm operands are 2-D.
            let (a0, a1) = (a.shape.first().copied(), a.shape.get(1).copied());
            let (b0, b1) = (b.shape.first().copied(), b.shape.get(1).copied());
            [a0, a1]
                .into_iter()
                .flatten()
                .find(|d| Some(*d) == b0 || Some(*d) == b1)
                .unwrap_or(1)
        }
        // Each output element of a convolution sums C/group x kernel positions products.
        (Op::Conv | Op::FusedConv, [_, w, ..]) => w.shape[1..].iter().product(),
        // Each input element of a transposed convolution scatters into C/group x kernel
        // positions outputs.
        (Op::ConvTranspose, [x, w, ..]) => {
            let per_input: usize = w.shape[1..].iter().product();
            return (x.numel() as u64).saturating_mul(per_input as u64);
        }
        _ => return 0,
    };
    (out.numel() as u64).saturating_mul(k as u64)
}

/// The work a model asks of the machine, independent of how it is compiled: what the roofline
/// (design brief, section 4) is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ModelWork {
    /// Multiply-accumulates of the tensor-engine ops (MatMul, Gemm, Conv, ConvTranspose).
    pub macs: u64,
    /// Graph inputs + weights (as stored) + graph outputs, each once.
    pub compulsory_bytes: u64,
}

/// Per value of `g`: known at compile time, a constant or computed only from constants (the
/// lowering folds such nodes).
fn weight_values(g: &crate::graph::Graph) -> Vec<bool> {
    let mut weight = vec![false; g.values.len()];
    for (v, _) in g.constants() {
        weight[v.index()] = true;
    }
    for node in &g.nodes {
        let folded = computed_from_weights(node, &weight);
        for o in &node.outputs {
            weight[o.index()] = folded;
        }
    }
    weight
}

/// Whether `node` reads only weights (and something), so it is folded at compile time.
fn computed_from_weights(node: &crate::graph::Node, weight: &[bool]) -> bool {
    !node.inputs.is_empty() && node.inputs.iter().all(|v| weight[v.index()])
}

/// [`ModelWork`] of `g` compiled at `precision`. A weight is a compile-time value that an op
/// computing at run time reads (an initializer, or what is folded from initializers); it is
/// stored at the operand precision when a tensor-engine op reads it or it is a Gather's table,
/// else at its own dtype. Ops computed only from weights are folded at compile time and cost
/// nothing. The lowering may execute more (zero-padded tiles, block-diagonal weights): that is
/// overhead, not work.
pub fn model_work(g: &crate::graph::Graph, precision: Precision) -> ModelWork {
    let tensor_op = |op: Op| {
        matches!(
            op,
            Op::MatMul | Op::Gemm | Op::FusedGemm | Op::Conv | Op::FusedConv | Op::ConvTranspose
        )
    };
    let weight = weight_values(g);
    // Per value: the bytes it is stored in, when a run-time op reads it as a weight.
    let mut stored: Vec<Option<u64>> = vec![None; g.values.len()];
    let mut macs = 0u64;
    for node in g
        .nodes
        .iter()
        .filter(|n| !computed_from_weights(n, &weight))
    {
        let ins: Vec<&TensorType> = node.inputs.iter().map(|&v| g.ty(v)).collect();
        if let Some(&o) = node.outputs.first() {
            macs = macs.saturating_add(self::macs(node.op, &ins, g.ty(o)));
        }
        for (i, &v) in node.inputs.iter().enumerate() {
            if !weight[v.index()] {
                continue;
            }
            let t = g.ty(v);
            // Gather tables are stored at the operand precision too (the lowering gathers rows
            // of a table as a one-hot product would read it).
            let operand = tensor_op(node.op) || (node.op == Op::Gather && i == 0);
            let size = if operand && t.dtype.is_float() {
                precision.operand_dtype().size_bytes()
            } else {
                t.dtype.size_bytes() as u64
            };
            let b = t.numel() as u64 * size;
            let s = &mut stored[v.index()];
            *s = Some(s.map_or(b, |x| x.min(b)));
        }
    }
    let io: u64 = g
        .inputs
        .iter()
        .chain(&g.outputs)
        .map(|&v| bytes(g.ty(v)))
        .sum();
    ModelWork {
        macs,
        compulsory_bytes: io + stored.iter().flatten().sum::<u64>(),
    }
}

/// Estimated cycles of one node computing `outs` from `ins`.
pub fn op_cycles(
    op: Op,
    ins: &[&TensorType],
    outs: &[TensorType],
    weight_only: bool,
    precision: Precision,
) -> f64 {
    if weight_only || matches!(op, Op::Reshape | Op::Identity) {
        return 0.0;
    }
    let out_elems: usize = outs.iter().map(|t| t.numel()).sum();
    let n = per_partition(out_elems);
    let n_in = ins.len().max(1) as u64;
    let compute = match op {
        Op::MatMul | Op::Gemm | Op::FusedGemm | Op::Conv | Op::FusedConv => {
            let Some(out) = outs.first() else { return 0.0 };
            let te =
                macs(op, ins, out) as f64 / costs::peak_macs_per_cycle(precision.operand_dtype());
            let evac = costs::scalar_cycles(n, 1) as f64;
            // A residual has the result's rank; a bias is 1-D.
            let fused_residual = op == Op::FusedConv
                && ins.len() > 2
                && ins.last().is_some_and(|r| r.rank() == out.rank());
            let c = if (matches!(op, Op::Gemm | Op::FusedGemm) && ins.len() > 2) || fused_residual {
                costs::vector_cycles(n, 2, 1) as f64
            } else {
                0.0
            };
            te + evac + c
        }
        Op::Transpose
        | Op::Expand
        | Op::Cast
        | Op::Concat
        | Op::Split
        | Op::Slice
        | Op::Tile
        | Op::Gather
        | Op::Resize
        | Op::Pad => 0.0,
        o if o.is_unary_elementwise() => costs::scalar_cycles(n, 1) as f64,
        o if o.is_binary_arith() || o.is_comparison() => costs::vector_cycles(n, 2, 1) as f64,
        Op::Softmax | Op::LogSoftmax | Op::LayerNormalization => {
            // max/sum (or mean/var) reductions, then the normalising pass, then the scale.
            let passes = 3;
            let elems = per_partition(ins.first().map_or(out_elems, |t| t.numel()));
            (costs::vector_cycles(elems, 1, 1) * passes) as f64
        }
        o if o.is_reduce() || matches!(o, Op::GlobalAveragePool | Op::GlobalMaxPool) => {
            let elems = per_partition(ins.first().map_or(out_elems, |t| t.numel()));
            costs::vector_cycles(elems, 1, 1) as f64
        }
        _ => {
            let elems = per_partition(ins.iter().map(|t| t.numel()).max().unwrap_or(out_elems));
            costs::vector_cycles(elems.max(n), n_in, 1) as f64
        }
    };
    let moved: u64 =
        ins.iter().map(|t| bytes(t)).sum::<u64>() + outs.iter().map(bytes).sum::<u64>();
    let dma = moved as f64 / machine::HBM_BYTES_PER_CYCLE as f64;
    let latency = (machine::DMA_TRIGGER_LATENCY * 2) as f64;
    compute.max(dma) + latency
}

/// Predicted cycles of a whole graph by the optimizer's model: every node's kernels as
/// lowered alone ([`super::node_cost::NodeCoster::graph_cycles`]).
pub fn graph_cycles(g: &crate::graph::Graph, precision: Precision) -> f64 {
    super::node_cost::NodeCoster::new(precision).graph_cycles(g)
}

/// Predicted cycles of each node of `g` (in node order) from the kernels the lowering emits
/// for it: the graph is lowered and every kernel is costed from its kernel IR
/// ([`super::kernel_cost`]); a node the lowering gives no kernel (a view, a folded constant)
/// costs zero, and when the graph does not lower, every node gets [`op_cycles`]'s estimate.
/// This is the per-kernel prediction `tahoma bench` ranks against the emulator's per-op active
/// cycles; extraction gets the same kernels one node at a time
/// ([`super::node_cost::NodeCoster`]), since it costs e-nodes that are in no graph yet.
pub fn lowered_node_cycles(g: &crate::graph::Graph, precision: Precision) -> Vec<f64> {
    match crate::lower::lower(g, crate::lower::LowerOptions { precision }) {
        Ok(kp) => {
            let by_name = super::kernel_cost::kernel_cycles_by_name(&kp);
            // Kernels are named after their node; nodes sharing a name split the kernels' cost
            // evenly (the bench sums them back).
            let mut share: std::collections::HashMap<&str, usize> = Default::default();
            for n in &g.nodes {
                *share.entry(n.name.as_str()).or_insert(0) += 1;
            }
            g.nodes
                .iter()
                .map(|n| {
                    by_name.get(&n.name).copied().unwrap_or(0.0) / share[n.name.as_str()] as f64
                })
                .collect()
        }
        Err(_) => node_cycles(g, precision),
    }
}

/// [`op_cycles`] of each node of `g`, in node order (constants and what is computed only from
/// them cost zero).
pub fn node_cycles(g: &crate::graph::Graph, precision: Precision) -> Vec<f64> {
    let weight = weight_values(g);
    let mut cycles = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let wo = computed_from_weights(node, &weight);
        let ins: Vec<&TensorType> = node.inputs.iter().map(|&v| g.ty(v)).collect();
        let outs: Vec<TensorType> = node.outputs.iter().map(|&v| g.ty(v).clone()).collect();
        cycles.push(op_cycles(node.op, &ins, &outs, wo, precision));
    }
    cycles
}
