//! Constant folding at import: evaluates a canonical op whose operands are all constants with
//! the reference interpreter's kernels (`crate::interp`), so shape arithmetic (`Shape` ->
//! `Gather` -> `Concat` -> `Reshape` chains) collapses into constants.

use crate::graph::{Attrs, Op};
use crate::interp::{elementwise as ew, index_ops, reduce, shape_ops};
use crate::tensor::Tensor;

/// Largest output (elements) folded when it is bigger than the op's inputs together, so that
/// folding never turns a small constant into a huge one (e.g. `Expand` to an activation shape).
const GROWTH_LIMIT: usize = 1 << 16;

/// Evaluates `op` on constant operands. `None` when the op is not folded (unsupported here, too
/// large, or the kernel rejected the operands; the node then stays in the graph).
pub fn fold(op: Op, attrs: &Attrs, ins: &[&Tensor], out_numel: usize) -> Option<Vec<Tensor>> {
    let in_numel: usize = ins.iter().map(|t| t.len()).sum();
    if out_numel > GROWTH_LIMIT && out_numel > in_numel {
        return None;
    }
    eval(op, attrs, ins).ok()
}

type R = Result<Vec<Tensor>, String>;

fn one(t: Result<Tensor, crate::interp::InterpError>) -> R {
    t.map(|t| vec![t]).map_err(|e| e.to_string())
}

fn eval(op: Op, attrs: &Attrs, ins: &[&Tensor]) -> R {
    use Op::*;
    let unary = |u: ew::UnaryOp| one(ew::unary(u, ins[0]));
    let binary = |b: ew::BinaryOp| one(ew::binary(b, ins[0], ins[1]));
    let cmp = |c: ew::CompareOp| one(ew::compare(c, ins[0], ins[1]));
    let logic = |l: ew::LogicOp| one(ew::logical(l, ins[0], ins[1]));
    let ints = |n: &str| attrs.ints(n).map(|v| v.to_vec());
    match op {
        Identity => Ok(vec![ins[0].clone()]),
        Neg => unary(ew::UnaryOp::Neg),
        Abs => unary(ew::UnaryOp::Abs),
        Sign => unary(ew::UnaryOp::Sign),
        Relu => unary(ew::UnaryOp::Relu),
        Floor => unary(ew::UnaryOp::Floor),
        Ceil => unary(ew::UnaryOp::Ceil),
        Sqrt => unary(ew::UnaryOp::Sqrt),
        Exp => unary(ew::UnaryOp::Exp),
        Log => unary(ew::UnaryOp::Log),
        Reciprocal => unary(ew::UnaryOp::Reciprocal),
        Add => binary(ew::BinaryOp::Add),
        Sub => binary(ew::BinaryOp::Sub),
        Mul => binary(ew::BinaryOp::Mul),
        Div => binary(ew::BinaryOp::Div),
        Pow => binary(ew::BinaryOp::Pow),
        Equal => cmp(ew::CompareOp::Equal),
        Less => cmp(ew::CompareOp::Less),
        Greater => cmp(ew::CompareOp::Greater),
        LessOrEqual => cmp(ew::CompareOp::LessOrEqual),
        GreaterOrEqual => cmp(ew::CompareOp::GreaterOrEqual),
        And => logic(ew::LogicOp::And),
        Or => logic(ew::LogicOp::Or),
        Xor => logic(ew::LogicOp::Xor),
        Not => one(ew::not(ins[0])),
        Where => one(ew::where_(ins[0], ins[1], ins[2])),
        Cast => one(Ok(ew::cast(ins[0], attrs.dtype("to")?))),
        Sum => one(ew::variadic(ew::VariadicOp::Sum, ins)),
        Max => one(ew::variadic(ew::VariadicOp::Max, ins)),
        Min => one(ew::variadic(ew::VariadicOp::Min, ins)),
        Reshape => {
            let shape: Vec<i64> = ints("shape")?;
            one(shape_ops::reshape(ins[0], &shape, true))
        }
        Transpose => one(shape_ops::transpose(ins[0], Some(&ints("perm")?))),
        Concat => one(shape_ops::concat(ins, attrs.int("axis")?)),
        Split => {
            let s = ints("split")?;
            shape_ops::split(ins[0], attrs.int("axis")?, Some(&s), s.len())
                .map_err(|e| e.to_string())
        }
        Slice => {
            let (starts, steps) = (ints("starts")?, ints("steps")?);
            // Canonical end -1 with a negative step means "through index 0": ONNX spells it
            // as any end below -dim.
            let ends: Vec<i64> = ints("ends")?
                .iter()
                .zip(&steps)
                .map(|(&e, &s)| if s < 0 && e < 0 { i64::MIN } else { e })
                .collect();
            one(shape_ops::slice(ins[0], &starts, &ends, None, Some(&steps)))
        }
        Expand => one(shape_ops::expand(ins[0], &ints("shape")?)),
        Tile => one(shape_ops::tile(ins[0], &ints("repeats")?)),
        Gather => one(index_ops::gather(ins[0], ins[1], attrs.int("axis")?)),
        ReduceSum | ReduceMean | ReduceMax | ReduceMin => {
            let r = match op {
                ReduceSum => reduce::ReduceOp::Sum,
                ReduceMean => reduce::ReduceOp::Mean,
                ReduceMax => reduce::ReduceOp::Max,
                _ => reduce::ReduceOp::Min,
            };
            let p = reduce::ReduceParams {
                axes: Some(ints("axes")?),
                keepdims: attrs.int("keepdims")? != 0,
                noop_with_empty_axes: false,
            };
            one(reduce::reduce(r, ins[0], &p))
        }
        _ => Err(format!("{op} is not folded at import")),
    }
}
