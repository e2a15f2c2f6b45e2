//! `Floor`, `Ceil`, `Round` (half to even) and the float classifications `IsNaN` and `IsInf`
//! on the vector engine, tiled like the other elementwise ops
//! ([`super::elementwise::tiled_scratch`]).
//!
//! The rounding ops are exact. A `TENSOR_COPY` into an i32 tile rounds to nearest even (through
//! fp32, saturating), which gives `r = rne(x)`; reading the i32 tile back as an operand gives it
//! as fp32. Then `floor = r - (r > x)`, `ceil = r + (r < x)`, `round = r`. Every fp32 of magnitude
//! at least 2^23 is already an integer (and may not fit i32), and NaN and infinities are their
//! own results: those lanes keep `x` through a `SELECT` on `|x| < 2^23` (false for NaN). The
//! sign of a zero result is that of `x` (`floor(-0.0) = -0.0`, `ceil(-0.5) = -0.0`): the result
//! is formed as `x * 0 - n` where `n` is the negated result computed so that a zero comes out as
//! `+0.0`, and `z - (+0.0) = z` keeps the zero's sign from `z = x * 0`.
//!
//! `IsNaN` is `x != x`; `IsInf` compares `x` (or `|x|`, for both signs) with infinity.

use super::elementwise::tiled_scratch;
use super::movement::broadcast_to;
use super::{node_error, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{KOp, ScalarArg, View};
use tahoma_isa::{Alu, Dtype};

fn ts(dst: &View, src: &View, op0: Alu, s0: f32, op1: Alu, s1: f32, reverse0: bool) -> KOp {
    KOp::TensorScalar {
        dst: dst.clone(),
        src: src.clone(),
        op0,
        scalar0: ScalarArg::Imm(s0),
        op1,
        scalar1: ScalarArg::Imm(s1),
        reverse0,
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

/// The smallest fp32 magnitude from which every fp32 is an integer (2^23).
fn integral_from() -> f32 {
    2f32.powi(f32::MANTISSA_DIGITS as i32 - 1)
}

/// The ops of one tile of Floor/Ceil/Round: `x` in, `y` out; scratch `t[0]` fp32 (`|x| < 2^23`,
/// then `x * 0`), `t[1]` i32 (`rne(x)`), `t[2]` fp32 (the correction, then `n`).
fn rounding_ops(op: Op, x: &View, y: &View, t: &[View]) -> Vec<KOp> {
    let (keep, r, n) = (&t[0], &t[1], &t[2]);
    let mut ops = vec![KOp::Copy {
        dst: r.clone(),
        src: x.clone(),
    }];
    match op {
        // n = (r > x) - r = -floor(x), +0.0 when floor(x) is zero.
        Op::Floor => {
            ops.push(tt(n, r, x, Alu::IsGt));
            ops.push(tt(n, n, r, Alu::Subtract));
        }
        // n = (0 - r) - (r < x) = -ceil(x), +0.0 when ceil(x) is zero.
        Op::Ceil => {
            ops.push(tt(y, r, x, Alu::IsLt));
            ops.push(ts(n, r, Alu::Subtract, 0.0, Alu::Bypass, 0.0, true));
            ops.push(tt(n, n, y, Alu::Subtract));
        }
        // n = 0 - r = -round(x), +0.0 when round(x) is zero.
        _ => ops.push(ts(n, r, Alu::Subtract, 0.0, Alu::Bypass, 0.0, true)),
    }
    ops.extend([
        // y = x * 0 - n (NaN for infinite x, replaced below).
        ts(keep, x, Alu::Multiply, 0.0, Alu::Bypass, 0.0, false),
        tt(y, keep, n, Alu::Subtract),
        // keep = |x| < 2^23 (false for NaN and infinities).
        ts(keep, x, Alu::AbsMax, 0.0, Alu::IsLt, integral_from(), false),
        KOp::Select {
            dst: y.clone(),
            pred: keep.clone(),
            on_true: y.clone(),
            on_false: x.clone(),
        },
    ]);
    ops
}

/// Lowers Floor, Ceil, Round, IsNaN or IsInf.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let out = l.place_output(node.outputs[0], node)?;
    let x: Placed = broadcast_to(l, node, node.inputs[0], &out.shape);
    let op = node.op;
    match op {
        Op::Floor | Op::Ceil | Op::Round => {
            let scratch = [Dtype::Fp32, Dtype::I32, Dtype::Fp32];
            tiled_scratch(l, node, &[x], &out, &scratch, &move |x, y, t| {
                rounding_ops(op, &x[0], y, t)
            });
        }
        Op::IsNaN => {
            tiled_scratch(l, node, &[x], &out, &[], &|x, y, _| {
                vec![tt(y, &x[0], &x[0], Alu::NotEqual)]
            });
        }
        Op::IsInf => {
            let flag = |name: &str| -> Result<bool, Diagnostic> {
                match node.attrs.get(name) {
                    None => Ok(true),
                    Some(_) => Ok(node
                        .attrs
                        .int(name)
                        .map_err(|m| node_error(node, Code::BadAttribute, m))?
                        != 0),
                }
            };
            let (pos, neg) = (flag("detect_positive")?, flag("detect_negative")?);
            tiled_scratch(l, node, &[x], &out, &[], &move |x, y, _| {
                let inf = f32::INFINITY;
                vec![match (pos, neg) {
                    (true, true) => ts(y, &x[0], Alu::AbsMax, 0.0, Alu::IsEqual, inf, false),
                    (true, false) => ts(y, &x[0], Alu::IsEqual, inf, Alu::Bypass, 0.0, false),
                    (false, true) => ts(y, &x[0], Alu::IsEqual, -inf, Alu::Bypass, 0.0, false),
                    (false, false) => KOp::Memset {
                        dst: y.clone(),
                        value: 0.0,
                    },
                }]
            });
        }
        other => {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("{} is not a rounding or classification op", other.name()),
            ))
        }
    }
    Ok(())
}
