//! Layout: transposes around a batched matrix product absorbed into the product's access
//! patterns.
//!
//! The lowering of a product (`lower/matmul.rs`) reads each 2-D operand matrix through element
//! strides and per-batch offsets, and writes the result the same way, so a product can read an
//! operand "as if transposed" and write its result transposed at no extra pass: the graph IR's
//! `MatMul` carries optional `perm_a`, `perm_b` and `perm_y` attributes meaning
//! `MatMul[perm_a, perm_b, perm_y](a, b) = Transpose[perm_y](MatMul(Transpose[perm_a](a),
//! Transpose[perm_b](b)))` (the interpreter and shape inference apply them literally). The
//! attention heads of a transformer are the case: `Transpose(Reshape(x))` splits the hidden
//! axis into heads on both sides of the score and context products; absorbed, the reshapes
//! stay views and the four transpose kernels disappear. Which axis reaches the partitions is
//! then the lowering's choice from the strides (a K-contiguous operand is transposed on chip by
//! 32x32 blocks, otherwise loaded K-major by a strided DMA). Whether absorbing pays is left to
//! extraction: the rules only add the alternative.
//!
//! 2-D products are not touched here: the algebra phase turns their transposes into Gemm's
//! `transA`/`transB`.
//!
//! | rule | rewrite | condition |
//! |---|---|---|
//! | `matmul-perm-a` | `MatMul(Transpose[p](a), b) -> MatMul[perm_a = p](a, b)` | no `perm_a` yet; `a` of rank >= 3, not computed only from weights |
//! | `matmul-perm-b` | `MatMul(a, Transpose[p](b)) -> MatMul[perm_b = p](a, b)` | as above for `b` |
//! | `matmul-perm-y` | `Transpose[p](MatMul(a, b)) -> MatMul[perm_y = p](a, b)` | no `perm_y` yet; the result of rank >= 3 |

use super::{perm_of, rule, var, Rule};
use crate::graph::{AttrValue, Attrs, Op};
use crate::opt::analysis::{add_op, attrs_of, ty_of, OptEGraph};
use egg::{Id, Subst};

/// The graph-IR attributes of a product's operand and result permutations.
pub const PERM_A: &str = "perm_a";
pub const PERM_B: &str = "perm_b";
pub const PERM_Y: &str = "perm_y";

/// Whether a MatMul's attributes are plain ONNX (no permutation or scale of the optimizer's),
/// so rules that rebuild it as another op may ignore them.
pub fn plain_matmul(a: &Attrs) -> bool {
    [PERM_A, PERM_B, PERM_Y, "alpha"]
        .iter()
        .all(|n| a.get(n).is_none())
}

fn ints(p: &[usize]) -> AttrValue {
    AttrValue::Ints(p.iter().map(|&d| d as i64).collect())
}

/// `MatMul` with attribute `name = perm(?p)` added to the matched product's, over `ins`.
fn with_perm(eg: &mut OptEGraph, s: &Subst, name: &str, ins: &[Id]) -> Option<Id> {
    let prod = attrs_of(eg, s[var("?m")])?;
    if prod.get(name).is_some() {
        return None;
    }
    let perm = perm_of(attrs_of(eg, s[var("?p")])?)?;
    let a = prod.clone().with(name, ints(&perm));
    add_op(eg, Op::MatMul, &a, ins)
}

/// A transposed operand worth reading through strides: rank >= 3 and not a constant (whose
/// transpose is folded at compile time anyway).
fn absorbable(eg: &OptEGraph, x: Id) -> bool {
    ty_of(eg, x).is_some_and(|t| t.rank() >= 3) && !eg[x].data.weight_only
}

/// The layout rules (see the module doc).
pub fn rules() -> Vec<Rule> {
    vec![
        rule(
            "matmul-perm-a",
            "(MatMul ?m (Transpose ?p ?a) ?b)",
            |eg, _, s| {
                let (a, b) = (s[var("?a")], s[var("?b")]);
                absorbable(eg, a).then_some(())?;
                with_perm(eg, s, PERM_A, &[a, b])
            },
        ),
        rule(
            "matmul-perm-b",
            "(MatMul ?m ?a (Transpose ?p ?b))",
            |eg, _, s| {
                let (a, b) = (s[var("?a")], s[var("?b")]);
                absorbable(eg, b).then_some(())?;
                with_perm(eg, s, PERM_B, &[a, b])
            },
        ),
        rule(
            "matmul-perm-y",
            "(Transpose ?p (MatMul ?m ?a ?b))",
            |eg, root, s| {
                ty_of(eg, root)
                    .is_some_and(|t| t.rank() >= 3)
                    .then_some(())?;
                with_perm(eg, s, PERM_Y, &[s[var("?a")], s[var("?b")]])
            },
        ),
    ]
}
