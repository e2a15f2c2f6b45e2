//! Elementwise ops: activations on the scalar engine (`ACTIVATE f(x * scale + bias)`), arithmetic
//! and clamps on the vector engine, `Cast` as a converting DMA; ops the fixed engines cannot
//! express go to the GpSimd engine ([`super::gpsimd`], same tiling via [`tiled_typed`]). Operands are broadcast to the
//! output shape in HBM first (see [`super::movement::broadcast_to`]); the kernel then streams the
//! flat data through SBUF in `[partitions x free]` tiles, computing in fp32.

use super::movement::broadcast_to;
use super::tiles::{dma_strided, flat_tiles, Dim, ELEMENTWISE_FREE_MAX};
use super::tiles::{split_dma, DMA_PIECE_BYTES};
use super::{node_error, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Mem};

/// What one tile computes, given the input tiles, the output tile and a scratch tile.
type Compute<'a> = dyn Fn(&[View], &View, &View) -> Vec<KOp> + 'a;

fn act(func: Act, scale: f32, bias: f32) -> impl Fn(&[View], &View, &View) -> Vec<KOp> {
    move |x, y, _| {
        vec![KOp::Activate {
            dst: y.clone(),
            src: x[0].clone(),
            func,
            scale: ScalarArg::Imm(scale),
            bias: ScalarArg::Imm(bias),
            acc: None,
        }]
    }
}

fn ts(dst: &View, src: &View, op0: Alu, s0: f32, op1: Alu, s1: f32) -> KOp {
    KOp::TensorScalar {
        dst: dst.clone(),
        src: src.clone(),
        op0,
        scalar0: ScalarArg::Imm(s0),
        op1,
        scalar1: ScalarArg::Imm(s1),
        reverse0: false,
        reverse1: false,
    }
}

fn tt(dst: &View, a: &View, b: &View, op: Alu) -> KOp {
    KOp::TensorTensor {
        dst: dst.clone(),
        a: a.clone(),
        b: b.clone(),
        op,
    }
}

/// Builds the tiled kernel: DMA inputs in, compute, DMA the result out.
fn tiled(l: &mut Lowerer, node: &Node, inputs: &[Placed], out: &Placed, compute: &Compute) {
    tiled_scratch(l, node, inputs, out, &[Dtype::Fp32], &|x, y, t| {
        compute(x, y, &t[0])
    });
}

/// What one tile computes, given the input tiles, the output tile and the scratch tiles.
pub type ComputeScratch<'a> = dyn Fn(&[View], &View, &[View]) -> Vec<KOp> + 'a;

/// [`tiled`] with scratch tiles of the given dtypes (named `tmp`, `tmp1`, ...): the inputs are
/// DMAed into fp32 tiles, `compute` writes the fp32 output tile, which is DMAed out.
pub fn tiled_scratch(
    l: &mut Lowerer,
    node: &Node,
    inputs: &[Placed],
    out: &Placed,
    scratch: &[Dtype],
    compute: &ComputeScratch,
) {
    let ins = vec![Dtype::Fp32; inputs.len()];
    tiled_typed(l, node, inputs, out, &ins, Dtype::Fp32, scratch, compute);
}

/// [`tiled_scratch`] with the dtypes of the input tiles (`in_tiles`, one per input) and of the
/// output tile chosen by the caller (i32 tiles keep integers exact; the DMAs convert).
#[allow(clippy::too_many_arguments)]
pub fn tiled_typed(
    l: &mut Lowerer,
    node: &Node,
    inputs: &[Placed],
    out: &Placed,
    in_tiles: &[Dtype],
    out_tile: Dtype,
    scratch: &[Dtype],
    compute: &ComputeScratch,
) {
    let scratch_name = |i: usize| {
        if i == 0 {
            "tmp".to_string()
        } else {
            format!("tmp{i}")
        }
    };
    let n = out.elems();
    let tiles = flat_tiles(n, ELEMENTWISE_FREE_MAX);
    let (p, f) = (machine::PARTITIONS.min(n.max(1)), tiles.free);
    let mut buffers: Vec<Buffer> = (0..inputs.len())
        .map(|i| Buffer {
            name: format!("x{i}"),
            mem: Mem::Sbuf,
            dtype: in_tiles.get(i).copied().unwrap_or(Dtype::Fp32),
            partitions: p,
            free: f,
        })
        .collect();
    buffers.push(Buffer {
        name: "y".into(),
        mem: Mem::Sbuf,
        dtype: out_tile,
        partitions: p,
        free: f,
    });
    for (i, &dtype) in scratch.iter().enumerate() {
        buffers.push(Buffer {
            name: scratch_name(i),
            mem: Mem::Sbuf,
            dtype,
            partitions: p,
            free: f,
        });
    }
    let tile = |parts: u64, free: u64, offset: Expr| -> Vec<KOp> {
        let sb = |name: &str| View::buf(name, 0, parts, Expr::constant(0), vec![(free, 1)]);
        let xs: Vec<View> = (0..inputs.len()).map(|i| sb(&format!("x{i}"))).collect();
        // Loads and the store are cut into pieces over the DMA queues: one queue moves only a
        // sixteenth of HBM bandwidth.
        let bytes = parts * free * Dtype::Fp32.size_bytes();
        let mut ops: Vec<KOp> = Vec::new();
        for (inp, x) in inputs.iter().zip(&xs) {
            let src = View::hbm(
                &inp.tensor,
                parts,
                free as i64,
                offset.clone(),
                vec![(free, 1)],
            );
            split_dma(x.clone(), src, bytes, DMA_PIECE_BYTES, &mut ops);
        }
        let y = sb("y");
        let tmps: Vec<View> = (0..scratch.len()).map(|i| sb(&scratch_name(i))).collect();
        ops.extend(compute(&xs, &y, &tmps));
        let dst = View::hbm(&out.tensor, parts, free as i64, offset, vec![(free, 1)]);
        split_dma(dst, y, bytes, DMA_PIECE_BYTES, &mut ops);
        ops
    };
    let mut body = Vec::new();
    if tiles.full > 0 {
        let step = (machine::PARTITIONS * f) as i64;
        let ops = tile(machine::PARTITIONS, f, Expr::var("t", step));
        body.push(Stmt::Loop {
            var: "t".into(),
            start: 0,
            end: tiles.full as i64,
            body: ops.into_iter().map(Stmt::Op).collect(),
        });
    }
    for &(off, parts, free) in &tiles.rest {
        body.extend(
            tile(parts, free, Expr::constant(off as i64))
                .into_iter()
                .map(Stmt::Op),
        );
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body,
    });
}

/// The operand index and value of a one-element float constant operand of a float arithmetic
/// node whose other operand has the output's shape (so the result is `x op c` elementwise).
fn scalar_constant_operand(l: &Lowerer, node: &Node) -> Option<(usize, f32)> {
    let arithmetic = matches!(
        node.op,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow
    );
    let out = l.graph.ty(node.outputs[0]);
    if !arithmetic || !out.dtype.is_float() {
        return None;
    }
    (0..2).find_map(|k| {
        let other = l.graph.ty(node.inputs[1 - k]);
        let c = l.graph.const_value(node.inputs[k])?.to_f32_vec();
        (c.len() == 1 && other.dtype.is_float() && other.shape == out.shape).then(|| (k, c[0]))
    })
}

fn float_attr(node: &Node, name: &str) -> Result<f32, Diagnostic> {
    node.attrs
        .float(name)
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

fn activate(dst: &View, src: &View, func: Act, scale: f32, bias: f32) -> KOp {
    KOp::Activate {
        dst: dst.clone(),
        src: src.clone(),
        func,
        scale: ScalarArg::Imm(scale),
        bias: ScalarArg::Imm(bias),
        acc: None,
    }
}

/// Lowers an elementwise node, or reports it as not lowered. Ops without an instruction on the
/// fixed engines go to the GpSimd engine ([`super::gpsimd`]).
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    if super::gpsimd::handles(l, node) {
        return super::gpsimd::lower(l, node);
    }
    let unary_act = match node.op {
        Op::Relu => Some((Act::Relu, 1.0)),
        Op::Sigmoid => Some((Act::Sigmoid, 1.0)),
        Op::Tanh => Some((Act::Tanh, 1.0)),
        Op::Exp => Some((Act::Exp, 1.0)),
        Op::Log => Some((Act::Log, 1.0)),
        Op::Sqrt => Some((Act::Sqrt, 1.0)),
        Op::Reciprocal => Some((Act::Reciprocal, 1.0)),
        Op::Erf => Some((Act::Erf, 1.0)),
        Op::Abs => Some((Act::Abs, 1.0)),
        Op::Sign => Some((Act::Sign, 1.0)),
        Op::Neg => Some((Act::Identity, -1.0)),
        Op::Gelu => {
            let approx = node.attrs.str("approximate").unwrap_or("none");
            Some((
                if approx == "tanh" {
                    Act::GeluTanh
                } else {
                    Act::Gelu
                },
                1.0,
            ))
        }
        _ => None,
    };
    let binary = match node.op {
        Op::Add | Op::Sum => Some(Alu::Add),
        Op::Sub => Some(Alu::Subtract),
        Op::Mul => Some(Alu::Multiply),
        Op::Div => Some(Alu::Divide),
        Op::Max => Some(Alu::Max),
        Op::Min => Some(Alu::Min),
        Op::Pow => Some(Alu::Pow),
        // Comparisons and logic produce booleans, held as i32 0/1.
        Op::Equal => Some(Alu::IsEqual),
        Op::Less => Some(Alu::IsLt),
        Op::Greater => Some(Alu::IsGt),
        Op::LessOrEqual => Some(Alu::IsLe),
        Op::GreaterOrEqual => Some(Alu::IsGe),
        Op::And => Some(Alu::LogicalAnd),
        Op::Or => Some(Alu::LogicalOr),
        Op::Xor => Some(Alu::LogicalXor),
        _ => None,
    };
    let is_unary_vector = matches!(
        node.op,
        Op::LeakyRelu
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Clip
            | Op::Not
            | Op::Where
            | Op::Softplus
            | Op::Softsign
            | Op::Swish
    );
    if unary_act.is_none() && binary.is_none() && !is_unary_vector && node.op != Op::Cast {
        return Err(node_error(node, Code::NotLowered, format!("{} has no lowering to the chip yet", node.op.name())).help("run it on the interpreter with `tahoma run MODEL --reference`, or rewrite the model without it"));
    }
    if node.op == Op::Div && !l.graph.ty(node.outputs[0]).dtype.is_float() {
        // The vector engine divides in fp32 and rounds to nearest; ONNX truncates integers.
        return Err(node_error(
            node,
            Code::NotLowered,
            "integer Div (truncating) is not lowered",
        ));
    }
    if l.graph.ty(node.outputs[0]).dtype.is_float()
        && node.inputs.iter().any(|&i| !l.graph.ty(i).dtype.is_float())
        && !matches!(node.op, Op::Cast | Op::Where)
    {
        return Err(node_error(
            node,
            Code::NotLowered,
            "mixes integer and float operands",
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    if node.op == Op::Cast {
        let x = l.placed(node.inputs[0]);
        let mut ops = Vec::new();
        dma_strided(
            &x.tensor,
            0,
            &out.tensor,
            0,
            &[Dim {
                size: out.elems(),
                src: 1,
                dst: 1,
            }],
            &mut ops,
        );
        l.push_kernel(Kernel {
            name: node.name.clone(),
            op: "Cast".into(),
            buffers: vec![],
            body: ops.into_iter().map(Stmt::Op).collect(),
        });
        return Ok(());
    }
    if let Some(op) = binary.filter(|_| node.inputs.len() == 2) {
        if let Some((k, c)) = scalar_constant_operand(l, node) {
            // A one-element constant operand is the vector engine's immediate: no broadcast
            // tensor is materialised and the kernel reads one input.
            let x = broadcast_to(l, node, node.inputs[1 - k], &out.shape);
            let reverse0 = k == 0;
            tiled(l, node, &[x], &out, &move |x, y, _| {
                vec![KOp::TensorScalar {
                    dst: y.clone(),
                    src: x[0].clone(),
                    op0: op,
                    scalar0: ScalarArg::Imm(c),
                    op1: Alu::Bypass,
                    scalar1: ScalarArg::Imm(0.0),
                    reverse0,
                    reverse1: false,
                }]
            });
            return Ok(());
        }
    }
    let ins: Vec<Placed> = node
        .inputs
        .iter()
        .map(|&i| broadcast_to(l, node, i, &out.shape))
        .collect();
    if let Some((func, scale)) = unary_act {
        tiled(l, node, &ins, &out, &act(func, scale, 0.0));
        return Ok(());
    }
    if let Some(op) = binary {
        let chain = move |x: &[View], y: &View, _: &View| -> Vec<KOp> {
            if x.len() == 1 {
                return vec![KOp::Copy {
                    dst: y.clone(),
                    src: x[0].clone(),
                }];
            }
            let mut ops = vec![tt(y, &x[0], &x[1], op)];
            for xi in &x[2..] {
                ops.push(tt(y, y, xi, op));
            }
            ops
        };
        tiled(l, node, &ins, &out, &chain);
        return Ok(());
    }
    match node.op {
        Op::LeakyRelu => {
            let alpha = float_attr(node, "alpha")?;
            tiled(l, node, &ins, &out, &move |x, y, t| {
                vec![
                    ts(t, &x[0], Alu::Multiply, alpha, Alu::Bypass, 0.0),
                    tt(y, &x[0], t, if alpha <= 1.0 { Alu::Max } else { Alu::Min }),
                ]
            });
        }
        Op::HardSigmoid => {
            let (alpha, beta) = (float_attr(node, "alpha")?, float_attr(node, "beta")?);
            tiled(l, node, &ins, &out, &move |x, y, _| {
                vec![
                    ts(y, &x[0], Alu::Multiply, alpha, Alu::Add, beta),
                    ts(y, y, Alu::Max, 0.0, Alu::Min, 1.0),
                ]
            });
        }
        Op::HardSwish => {
            tiled(l, node, &ins, &out, &move |x, y, t| {
                vec![
                    ts(t, &x[0], Alu::Multiply, 1.0 / 6.0, Alu::Add, 0.5),
                    ts(t, t, Alu::Max, 0.0, Alu::Min, 1.0),
                    tt(y, &x[0], t, Alu::Multiply),
                ]
            });
        }
        Op::Clip => {
            let lo = node
                .attrs
                .opt_float("min")
                .map_err(|m| node_error(node, Code::BadAttribute, m))?
                .unwrap_or(f32::NEG_INFINITY);
            let hi = node
                .attrs
                .opt_float("max")
                .map_err(|m| node_error(node, Code::BadAttribute, m))?
                .unwrap_or(f32::INFINITY);
            tiled(l, node, &ins, &out, &move |x, y, _| {
                vec![ts(y, &x[0], Alu::Max, lo, Alu::Min, hi)]
            });
        }
        // Two scalar-engine instructions: cheaper than a GpSimd kernel of two host calls.
        Op::Softplus => {
            tiled(l, node, &ins, &out, &move |x, y, t| {
                vec![
                    activate(t, &x[0], Act::Exp, 1.0, 0.0),
                    activate(y, t, Act::Log, 1.0, 1.0),
                ]
            });
        }
        // x / (1 + |x|): two vector instructions.
        Op::Softsign => {
            tiled(l, node, &ins, &out, &move |x, y, t| {
                vec![
                    ts(t, &x[0], Alu::AbsMax, 0.0, Alu::Add, 1.0),
                    tt(y, &x[0], t, Alu::Divide),
                ]
            });
        }
        // x * sigmoid(alpha x): one ACTIVATE and one vector multiply.
        Op::Swish => {
            let alpha = node
                .attrs
                .opt_float("alpha")
                .map_err(|m| node_error(node, Code::BadAttribute, m))?
                .unwrap_or(1.0);
            tiled(l, node, &ins, &out, &move |x, y, t| {
                vec![
                    activate(t, &x[0], Act::Sigmoid, alpha, 0.0),
                    tt(y, &x[0], t, Alu::Multiply),
                ]
            });
        }
        Op::Not => {
            tiled(l, node, &ins, &out, &move |x, y, _| {
                vec![ts(y, &x[0], Alu::IsEqual, 0.0, Alu::Bypass, 0.0)]
            });
        }
        Op::Where => {
            tiled(l, node, &ins, &out, &move |x, y, _| {
                vec![KOp::Select {
                    dst: y.clone(),
                    pred: x[0].clone(),
                    on_true: x[1].clone(),
                    on_false: x[2].clone(),
                }]
            });
        }
        _ => unreachable!("filtered above"),
    }
    Ok(())
}
