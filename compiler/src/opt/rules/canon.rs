//! Canonicalisation: rules that only remove work, each exact in floating point.
//!
//! | rule | rewrite | condition |
//! |---|---|---|
//! | `identity` | `Identity(x) -> x` | — |
//! | `transpose-identity` | `Transpose[p](x) -> x` | `p` is the identity |
//! | `transpose-compose` | `Transpose[p](Transpose[q](x)) -> Transpose[q∘p](x)`, or `x` when the composition is the identity | — |
//! | `reshape-compose` | `Reshape[s](Reshape[t](x)) -> Reshape[s](x)` | — |
//! | `reshape-noop` | `Reshape[s](x) -> x` | `s` is x's shape |
//! | `mul-one`, `mul-one-left` | `x * 1 -> x`, `1 * x -> x` | the constant's elements are all 1 and the product has x's type |
//! | `div-one` | `x / 1 -> x` | as `mul-one` |
//! | `add-zero`, `add-zero-left`, `sub-zero` | `x + 0`, `0 + x`, `x - 0 -> x` | as `mul-one` with 0 |
//! | `neg-neg` | `Neg(Neg(x)) -> x` | — |
//! | `sum-two` | `Sum(x, y) -> Add(x, y)` (the same broadcasting sum, so Add's fusions apply) | two operands |
//! | `conv-batchnorm`, `conv-bias-batchnorm` | `BatchNormalization(Conv(x, W[, B]), s, b, m, v) -> Conv(x, W·k, B')` with `k = s / sqrt(v + eps)` per output channel and `B' = (B - m)·k + b` (`b - m·k` without B) | W, B and the four parameters are weights (the new operands fold at compile time) |
//!
//! The BatchNorm fold is the one rule here that is not exact: the per-channel scale moves from
//! the conv's result into its weights (one product per weight instead of one per output), so
//! results differ by a few ulps of the accumulated sums (its test uses rtol 1e-4).

use super::{is_identity, perm_of, rule, var, Rule};
use crate::graph::{AttrValue, Attrs, Op};
use crate::opt::analysis::{add_op, attrs_of, ty_of, ConstSource, OptEGraph};
use crate::opt::lang::TNode;
use crate::tensor::Tensor;
use egg::{Id, Subst};

/// `?x` when `?c` is a float constant splat of `value` and the matched op's result has x's type.
fn drop_splat(eg: &OptEGraph, s: &Subst, result_like: Id, value: f64) -> Option<Id> {
    let (x, c) = (s[var("?x")], s[var("?c")]);
    let splat = eg[c].data.splat?;
    let (tx, tr) = (ty_of(eg, x)?, ty_of(eg, result_like)?);
    (splat == value && tx == tr && tx.dtype.is_float()).then_some(x)
}

/// `BatchNormalization(Conv(x, W[, B]), s, b, m, v)` as one Conv whose weights and bias carry
/// the normalisation: `W · k[co]` and `(B - m) · k + b` with `k = s / sqrt(v + eps)`, built from
/// ops over weights (the extraction folds them with the interpreter, as the BatchNorm kernel
/// would have computed `k`). `None` unless every operand but `x` is a weight.
fn fold_batchnorm(eg: &mut OptEGraph, s: &Subst, with_bias: bool) -> Option<Id> {
    let (x, w) = (s[var("?x")], s[var("?w")]);
    let (sc, b, m, v) = (s[var("?s")], s[var("?b")], s[var("?m")], s[var("?v")]);
    let cb = with_bias.then(|| s[var("?cb")]);
    let weights = [w, sc, b, m, v].into_iter().chain(cb);
    if !weights.clone().all(|c| eg[c].data.weight_only) {
        return None;
    }
    let eps = attrs_of(eg, s[var("?a")])?.float("epsilon").ok()?;
    let conv_attrs = attrs_of(eg, s[var("?c")])?.clone();
    let tw = ty_of(eg, w)?.clone();
    let tv = ty_of(eg, v)?.clone();
    if !tw.dtype.is_float()
        || tw.rank() < 3
        || weights
            .clone()
            .any(|c| ty_of(eg, c).map(|t| t.dtype) != Some(tw.dtype))
    {
        return None;
    }
    let none = Attrs::new();
    // One constant per epsilon value (a fresh leaf per application would make the rule fire
    // forever).
    let eps_t = Tensor::from_f32(tv.dtype, &[1], &[eps]);
    let known = eg.analysis.consts.iter().position(|c| {
        matches!(&c.source, ConstSource::Owned(t) if t.dtype() == eps_t.dtype() && t.shape() == eps_t.shape() && t.to_f32_vec() == eps_t.to_f32_vec())
    });
    let k_eps = match known {
        Some(i) => i as u32,
        None => eg.analysis.add_const(eps_t),
    };
    let eps_c = eg.add(TNode::Const(k_eps));
    let var_eps = add_op(eg, Op::Add, &none, &[v, eps_c])?;
    let sd = add_op(eg, Op::Sqrt, &none, &[var_eps])?;
    let k = add_op(eg, Op::Div, &none, &[sc, sd])?;
    // k as [Cout, 1, ...] against W's [Cout, Cin/group, kernel...].
    let mut kshape = vec![1i64; tw.rank()];
    kshape[0] = tw.shape[0] as i64;
    let kr = add_op(
        eg,
        Op::Reshape,
        &Attrs::new().with("shape", AttrValue::Ints(kshape)),
        &[k],
    )?;
    let w2 = add_op(eg, Op::Mul, &none, &[w, kr])?;
    let b2 = match cb {
        Some(cb) => {
            let centred = add_op(eg, Op::Sub, &none, &[cb, m])?;
            let scaled = add_op(eg, Op::Mul, &none, &[centred, k])?;
            add_op(eg, Op::Add, &none, &[scaled, b])?
        }
        None => {
            let shift = add_op(eg, Op::Mul, &none, &[m, k])?;
            add_op(eg, Op::Sub, &none, &[b, shift])?
        }
    };
    add_op(eg, Op::Conv, &conv_attrs, &[x, w2, b2])
}

/// The canonicalisation rules.
pub fn rules() -> Vec<Rule> {
    let mut v = vec![
        rule("identity", "(Identity ?a ?x)", |_, _, s| Some(s[var("?x")])),
        rule("transpose-identity", "(Transpose ?p ?x)", |eg, _, s| {
            let p = perm_of(attrs_of(eg, s[var("?p")])?)?;
            is_identity(&p).then_some(s[var("?x")])
        }),
        rule(
            "transpose-compose",
            "(Transpose ?p (Transpose ?q ?x))",
            |eg, _, s| {
                let p = perm_of(attrs_of(eg, s[var("?p")])?)?;
                let q = perm_of(attrs_of(eg, s[var("?q")])?)?;
                if p.len() != q.len() || p.iter().any(|&i| i >= q.len()) {
                    return None;
                }
                // out[i] = inner[p[i]] = x[q[p[i]]].
                let r: Vec<usize> = p.iter().map(|&i| q[i]).collect();
                let x = s[var("?x")];
                if is_identity(&r) {
                    return Some(x);
                }
                let a = Attrs::new().with(
                    "perm",
                    AttrValue::Ints(r.iter().map(|&d| d as i64).collect()),
                );
                add_op(eg, Op::Transpose, &a, &[x])
            },
        ),
        rule(
            "reshape-compose",
            "(Reshape ?a (Reshape ?b ?x))",
            |eg, _, s| {
                let a = attrs_of(eg, s[var("?a")])?.clone();
                add_op(eg, Op::Reshape, &a, &[s[var("?x")]])
            },
        ),
        rule("reshape-noop", "(Reshape ?a ?x)", |eg, _, s| {
            let shape = attrs_of(eg, s[var("?a")])?.usizes("shape").ok()?;
            let x = s[var("?x")];
            (ty_of(eg, x)?.shape == shape).then_some(x)
        }),
        rule("neg-neg", "(Neg ?a (Neg ?b ?x))", |_, _, s| {
            Some(s[var("?x")])
        }),
        rule("sum-two", "(Sum ?a ?x ?y)", |eg, _, s| {
            add_op(eg, Op::Add, &Attrs::new(), &[s[var("?x")], s[var("?y")]])
        }),
        rule(
            "conv-batchnorm",
            "(BatchNormalization ?a (Conv ?c ?x ?w) ?s ?b ?m ?v)",
            |eg, _, s| fold_batchnorm(eg, s, false),
        ),
        rule(
            "conv-bias-batchnorm",
            "(BatchNormalization ?a (Conv ?c ?x ?w ?cb) ?s ?b ?m ?v)",
            |eg, _, s| fold_batchnorm(eg, s, true),
        ),
    ];
    // x op c -> x for the neutral constants; the result's type must be x's (no broadcast growth).
    for (name, op, pat_right, value) in [
        ("mul-one", "Mul", true, 1.0),
        ("mul-one-left", "Mul", false, 1.0),
        ("div-one", "Div", true, 1.0),
        ("add-zero", "Add", true, 0.0),
        ("add-zero-left", "Add", false, 0.0),
        ("sub-zero", "Sub", true, 0.0),
    ] {
        let pattern = if pat_right {
            format!("({op} ?a ?x ?c)")
        } else {
            format!("({op} ?a ?c ?x)")
        };
        v.push(rule(name, &pattern, move |eg, root, s| {
            drop_splat(eg, s, root, value)
        }));
    }
    v
}
