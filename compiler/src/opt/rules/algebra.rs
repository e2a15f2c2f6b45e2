//! Algebra: matrix products rewritten into the Gemm forms the tensor-engine lowering executes
//! in one kernel (transposed operands read through access patterns, bias added and scale
//! applied while evacuating PSUM). All operands are 2-D.
//!
//! | rule | rewrite | condition |
//! |---|---|---|
//! | `matmul-transpose-a` | `MatMul(Transpose[1,0](A), B) -> Gemm[transA](A, B)` | A, B 2-D float |
//! | `matmul-transpose-b` | `MatMul(A, Transpose[1,0](B)) -> Gemm[transB](A, B)` | as above |
//! | `gemm-transpose-a`, `gemm-transpose-a-c` | `Gemm[tA](Transpose[1,0](A), B[, C]) -> Gemm[!tA](A, B[, C])` | — |
//! | `gemm-transpose-b`, `gemm-transpose-b-c` | as above for B | — |
//! | `matmul-bias`, `matmul-bias-left` | `MatMul(A, B) + bias -> Gemm(A, B, bias)` | A, B 2-D; bias `[N]`, `[1, N]` or `[M, N]` of the same dtype (broadcast along rows) |
//! | `matmul-bias-batched`, `matmul-bias-batched-left` | `MatMul(A, W) + bias -> Reshape(Gemm(Reshape(A, [B·M, K]), W, bias), [.., M, N])` | A of rank >= 3, W 2-D; bias `[N]` or `[1, N]` (a linear layer over a sequence) |
//! | `gemm-bias`, `gemm-bias-left` | `Gemm[α, tA, tB](A, B) + bias -> Gemm[α, β=1, tA, tB](A, B, bias)` | as above |
//! | `matmul-scale`, `matmul-scale-left` | `MatMul(A, B) * c -> Gemm[α=c](A, B)` | A, B 2-D; c a constant splat whose product keeps the Gemm's type |
//! | `gemm-scale`, `gemm-scale-left`, `gemm-scale-c`, `gemm-scale-c-left` | `Gemm[α, β](..) * c -> Gemm[cα, cβ](..)` | as above (with C: distributes the product over the sum, one rounding moved) |
//! | `gemm-div`, `gemm-div-c`, `matmul-div` | `Gemm[α, β](..) / c -> Gemm[α/c, β/c](..)` | c a non-zero splat (one rounding moved) |
//! | `matmul-scale-batched`, `-left`, `matmul-div-batched` | `MatMul[α](A, B) * c -> MatMul[α=cα](A, B)` (`/ c`: `α/c`) | a product of rank >= 3 (the graph IR's MatMul takes an optional `alpha`); c a splat as above |

use super::{gemm_attrs, perm_of, rule, var, Rule};
use crate::graph::{AttrValue, Attrs, Op, TensorType};
use crate::opt::analysis::{add_op, attrs_of, ty_of, OptEGraph};
use egg::{Id, Subst};

fn is_2d_float(t: &TensorType) -> bool {
    t.rank() == 2 && t.dtype.is_float()
}

fn swaps_2d(eg: &OptEGraph, p: Id) -> bool {
    attrs_of(eg, p)
        .and_then(perm_of)
        .is_some_and(|p| p == [1, 0])
}

fn both_2d(eg: &OptEGraph, a: Id, b: Id) -> bool {
    matches!((ty_of(eg, a), ty_of(eg, b)), (Some(x), Some(y)) if is_2d_float(x) && is_2d_float(y))
}

fn gemm_flags(a: &Attrs) -> Option<(f32, f32, bool, bool)> {
    Some((
        a.float("alpha").ok()?,
        a.float("beta").ok()?,
        a.int("transA").ok()? != 0,
        a.int("transB").ok()? != 0,
    ))
}

/// Gemm's operands (everything after the attribute leaf) of a matched Gemm pattern.
fn operands(s: &Subst, names: &[&str]) -> Vec<Id> {
    names.iter().map(|n| s[var(n)]).collect()
}

/// True when `bias` can be Gemm's C for a product of type `prod`: same dtype, and shaped
/// `[N]`, `[1, N]` or `[M, N]`, so adding it never grows the result.
fn bias_fits(eg: &OptEGraph, bias: Id, prod: Id, root: Id) -> bool {
    let (Some(b), Some(p), Some(r)) = (ty_of(eg, bias), ty_of(eg, prod), ty_of(eg, root)) else {
        return false;
    };
    if b.dtype != p.dtype || p != r || p.rank() != 2 {
        return false;
    }
    let (m, n) = (p.shape[0], p.shape[1]);
    matches!(b.shape.as_slice(), [x] if *x == n)
        || matches!(b.shape.as_slice(), [1, x] if *x == n)
        || b.shape == [m, n]
}

/// The factor of a constant splat `c` when `op(prod, c)` keeps `prod`'s type.
fn scale_of(eg: &OptEGraph, c: Id, prod: Id, root: Id) -> Option<f64> {
    let v = eg[c].data.splat?;
    let (tp, tr) = (ty_of(eg, prod)?, ty_of(eg, root)?);
    (tp == tr && tp.dtype == ty_of(eg, c)?.dtype).then_some(v)
}

/// Whether the attribute leaf `m` of a matched MatMul is plain ONNX (see
/// [`super::layout::plain_matmul`]): rules that rebuild the product as a Gemm need it.
fn plain(eg: &OptEGraph, m: Id) -> bool {
    attrs_of(eg, m).is_some_and(super::layout::plain_matmul)
}

/// The algebra rules.
pub fn rules() -> Vec<Rule> {
    let mut v = vec![
        rule(
            "matmul-transpose-a",
            "(MatMul ?m (Transpose ?p ?a) ?b)",
            |eg, _, s| {
                let (a, b) = (s[var("?a")], s[var("?b")]);
                if !swaps_2d(eg, s[var("?p")]) || !both_2d(eg, a, b) || !plain(eg, s[var("?m")]) {
                    return None;
                }
                add_op(eg, Op::Gemm, &gemm_attrs(1.0, 1.0, true, false), &[a, b])
            },
        ),
        rule(
            "matmul-transpose-b",
            "(MatMul ?m ?a (Transpose ?p ?b))",
            |eg, _, s| {
                let (a, b) = (s[var("?a")], s[var("?b")]);
                if !swaps_2d(eg, s[var("?p")]) || !both_2d(eg, a, b) || !plain(eg, s[var("?m")]) {
                    return None;
                }
                add_op(eg, Op::Gemm, &gemm_attrs(1.0, 1.0, false, true), &[a, b])
            },
        ),
    ];
    // A transposed Gemm operand flips its trans flag (with and without C).
    for (name, pattern, which, names) in [
        (
            "gemm-transpose-a",
            "(Gemm ?g (Transpose ?p ?a) ?b)",
            0,
            &["?a", "?b"][..],
        ),
        (
            "gemm-transpose-a-c",
            "(Gemm ?g (Transpose ?p ?a) ?b ?c)",
            0,
            &["?a", "?b", "?c"][..],
        ),
        (
            "gemm-transpose-b",
            "(Gemm ?g ?a (Transpose ?p ?b))",
            1,
            &["?a", "?b"][..],
        ),
        (
            "gemm-transpose-b-c",
            "(Gemm ?g ?a (Transpose ?p ?b) ?c)",
            1,
            &["?a", "?b", "?c"][..],
        ),
    ] {
        let names: Vec<&'static str> = names.to_vec();
        v.push(rule(name, pattern, move |eg, _, s| {
            let ops = operands(s, &names);
            if !swaps_2d(eg, s[var("?p")]) || !both_2d(eg, ops[0], ops[1]) {
                return None;
            }
            let (al, be, ta, tb) = gemm_flags(attrs_of(eg, s[var("?g")])?)?;
            let (ta, tb) = if which == 0 { (!ta, tb) } else { (ta, !tb) };
            add_op(eg, Op::Gemm, &gemm_attrs(al, be, ta, tb), &ops)
        }));
    }
    // MatMul + bias -> Gemm with C.
    for (name, pattern) in [
        ("matmul-bias", "(Add ?s (MatMul ?m ?a ?b) ?c)"),
        ("matmul-bias-left", "(Add ?s ?c (MatMul ?m ?a ?b))"),
    ] {
        v.push(rule(name, pattern, |eg, root, s| {
            let (a, b, c) = (s[var("?a")], s[var("?b")], s[var("?c")]);
            let prod = eg.lookup(crate::opt::lang::TNode::op(
                Op::MatMul,
                s[var("?m")],
                &[a, b],
            ))?;
            if !both_2d(eg, a, b) || !bias_fits(eg, c, prod, root) || !plain(eg, s[var("?m")]) {
                return None;
            }
            add_op(
                eg,
                Op::Gemm,
                &gemm_attrs(1.0, 1.0, false, false),
                &[a, b, c],
            )
        }));
    }
    // A linear layer over a batch or sequence: flatten the leading dims (free reshapes).
    for (name, pattern) in [
        ("matmul-bias-batched", "(Add ?s (MatMul ?m ?a ?b) ?c)"),
        ("matmul-bias-batched-left", "(Add ?s ?c (MatMul ?m ?a ?b))"),
    ] {
        v.push(rule(name, pattern, |eg, root, s| {
            let (a, b, c) = (s[var("?a")], s[var("?b")], s[var("?c")]);
            let prod = eg.lookup(crate::opt::lang::TNode::op(
                Op::MatMul,
                s[var("?m")],
                &[a, b],
            ))?;
            let (ta, tb, tc) = (ty_of(eg, a)?, ty_of(eg, b)?, ty_of(eg, c)?);
            let (tp, tr) = (ty_of(eg, prod)?, ty_of(eg, root)?);
            if ta.rank() < 3
                || !ta.dtype.is_float()
                || !is_2d_float(tb)
                || tp != tr
                || !plain(eg, s[var("?m")])
            {
                return None;
            }
            let (k, n) = (tb.shape[0], tb.shape[1]);
            let bias_ok = tc.dtype == tp.dtype
                && (matches!(tc.shape.as_slice(), [x] if *x == n)
                    || matches!(tc.shape.as_slice(), [1, x] if *x == n));
            if !bias_ok || ta.shape.last() != Some(&k) {
                return None;
            }
            let rows: usize = ta.shape[..ta.rank() - 1].iter().product();
            let out_shape: Vec<i64> = tp.shape.iter().map(|&d| d as i64).collect();
            let flat = Attrs::new().with("shape", AttrValue::Ints(vec![rows as i64, k as i64]));
            let back = Attrs::new().with("shape", AttrValue::Ints(out_shape));
            let a2 = add_op(eg, Op::Reshape, &flat, &[a])?;
            let gm = add_op(
                eg,
                Op::Gemm,
                &gemm_attrs(1.0, 1.0, false, false),
                &[a2, b, c],
            )?;
            add_op(eg, Op::Reshape, &back, &[gm])
        }));
    }
    for (name, pattern) in [
        ("gemm-bias", "(Add ?s (Gemm ?g ?a ?b) ?c)"),
        ("gemm-bias-left", "(Add ?s ?c (Gemm ?g ?a ?b))"),
    ] {
        v.push(rule(name, pattern, |eg, root, s| {
            let (a, b, c) = (s[var("?a")], s[var("?b")], s[var("?c")]);
            let prod = eg.lookup(crate::opt::lang::TNode::op(Op::Gemm, s[var("?g")], &[a, b]))?;
            if !bias_fits(eg, c, prod, root) {
                return None;
            }
            let (al, _, ta, tb) = gemm_flags(attrs_of(eg, s[var("?g")])?)?;
            add_op(eg, Op::Gemm, &gemm_attrs(al, 1.0, ta, tb), &[a, b, c])
        }));
    }
    // Products scaled by a constant splat: the factor moves into alpha (and beta).
    for (name, pattern, div, names) in [
        (
            "matmul-scale",
            "(Mul ?s (MatMul ?g ?a ?b) ?k)",
            false,
            &["?a", "?b"][..],
        ),
        (
            "matmul-scale-left",
            "(Mul ?s ?k (MatMul ?g ?a ?b))",
            false,
            &["?a", "?b"][..],
        ),
        (
            "matmul-div",
            "(Div ?s (MatMul ?g ?a ?b) ?k)",
            true,
            &["?a", "?b"][..],
        ),
        (
            "gemm-scale",
            "(Mul ?s (Gemm ?g ?a ?b) ?k)",
            false,
            &["?a", "?b"][..],
        ),
        (
            "gemm-scale-left",
            "(Mul ?s ?k (Gemm ?g ?a ?b))",
            false,
            &["?a", "?b"][..],
        ),
        (
            "gemm-div",
            "(Div ?s (Gemm ?g ?a ?b) ?k)",
            true,
            &["?a", "?b"][..],
        ),
        (
            "gemm-scale-c",
            "(Mul ?s (Gemm ?g ?a ?b ?c) ?k)",
            false,
            &["?a", "?b", "?c"][..],
        ),
        (
            "gemm-scale-c-left",
            "(Mul ?s ?k (Gemm ?g ?a ?b ?c))",
            false,
            &["?a", "?b", "?c"][..],
        ),
        (
            "gemm-div-c",
            "(Div ?s (Gemm ?g ?a ?b ?c) ?k)",
            true,
            &["?a", "?b", "?c"][..],
        ),
    ] {
        let names: Vec<&'static str> = names.to_vec();
        let is_matmul = pattern.contains("MatMul");
        v.push(rule(name, pattern, move |eg, root, s| {
            let ops = operands(s, &names);
            let g = s[var("?g")];
            if !both_2d(eg, ops[0], ops[1]) || (is_matmul && !plain(eg, g)) {
                return None;
            }
            let inner = if is_matmul { Op::MatMul } else { Op::Gemm };
            let prod = eg.lookup(crate::opt::lang::TNode::op(inner, g, &ops))?;
            let k = scale_of(eg, s[var("?k")], prod, root)?;
            if div && k == 0.0 {
                return None;
            }
            let (al, be, ta, tb) = if is_matmul {
                (1.0, 1.0, false, false)
            } else {
                gemm_flags(attrs_of(eg, g)?)?
            };
            let f = |x: f32| -> f32 {
                if div {
                    (f64::from(x) / k) as f32
                } else {
                    (f64::from(x) * k) as f32
                }
            };
            let be = if ops.len() > 2 { f(be) } else { be };
            let attrs = gemm_attrs(f(al), be, ta, tb);
            if !attrs.float("alpha").is_ok_and(f32::is_finite) {
                return None;
            }
            add_op(eg, Op::Gemm, &attrs, &ops)
        }));
    }
    // A batched product has no Gemm form: the factor becomes the MatMul's own `alpha`, applied
    // while its result leaves PSUM.
    for (name, pattern, div) in [
        (
            "matmul-scale-batched",
            "(Mul ?s (MatMul ?g ?a ?b) ?k)",
            false,
        ),
        (
            "matmul-scale-batched-left",
            "(Mul ?s ?k (MatMul ?g ?a ?b))",
            false,
        ),
        ("matmul-div-batched", "(Div ?s (MatMul ?g ?a ?b) ?k)", true),
    ] {
        v.push(rule(name, pattern, move |eg, root, s| {
            let (a, b, g) = (s[var("?a")], s[var("?b")], s[var("?g")]);
            let prod = eg.lookup(crate::opt::lang::TNode::op(Op::MatMul, g, &[a, b]))?;
            if ty_of(eg, prod)?.rank() < 3 || !ty_of(eg, prod)?.dtype.is_float() {
                return None;
            }
            let k = scale_of(eg, s[var("?k")], prod, root)?;
            let attrs = attrs_of(eg, g)?;
            let al = f64::from(attrs.float("alpha").unwrap_or(1.0));
            let al = if div { al / k } else { al * k } as f32;
            if (div && k == 0.0) || !al.is_finite() {
                return None;
            }
            let attrs = attrs.clone().with("alpha", AttrValue::Float(al));
            add_op(eg, Op::MatMul, &attrs, &[a, b])
        }));
    }
    v
}
