//! Constant folding at import: evaluates a canonical op whose operands are all constants with
//! the reference interpreter ([`crate::interp::run_op`], the one mapping from graph-IR ops to
//! kernels), so shape arithmetic (`Shape` -> `Gather` -> `Concat` -> `Reshape` chains)
//! collapses into constants.

use crate::graph::{Attrs, Op, TensorType};
use crate::interp::run_op;
use crate::tensor::Tensor;

/// Largest output (elements) folded when it is bigger than the op's inputs together, so that
/// folding never turns a small constant into a huge one (e.g. `Expand` to an activation shape).
const GROWTH_LIMIT: usize = 1 << 16;

/// Evaluates `op` on constant operands; `out_tys` are the output types shape inference gives.
/// `None` when the op is not folded (too large, or the kernel rejected the operands or gave
/// other types than inferred; the node then stays in the graph, where the verifier and the
/// interpreter report the problem).
pub fn fold(op: Op, attrs: &Attrs, ins: &[&Tensor], out_tys: &[TensorType]) -> Option<Vec<Tensor>> {
    let in_numel: usize = ins.iter().map(|t| t.len()).sum();
    let out_numel: usize = out_tys.iter().map(|t| t.numel()).sum();
    if out_numel > GROWTH_LIMIT && out_numel > in_numel {
        return None;
    }
    let vals = run_op(op, attrs, ins, out_tys.len()).ok()?;
    let typed = vals.len() == out_tys.len()
        && vals
            .iter()
            .zip(out_tys)
            .all(|(t, ty)| t.dtype() == ty.dtype && t.shape() == ty.shape.as_slice());
    typed.then_some(vals)
}
