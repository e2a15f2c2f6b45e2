//! Fusion: work the chip can do on the way out of PSUM folded into the producing kernel, and
//! expanded formulas recognised as the single ops the lowering runs in one kernel.
//!
//! A Gemm's result leaves PSUM through the same kind of pass, so [`Op::FusedGemm`] names a
//! Gemm with an activation applied after C is added.
//!
//! A convolution's result leaves PSUM through one scalar-engine `ACTIVATE f(x + bias)` per
//! tile; [`Op::FusedConv`] names what that pass also does: an activation from the scalar
//! engine's table and a residual added before (`residual = 1`) or after (`residual = 2`) it.
//! Each fusion saves a kernel and a round trip of the tensor through HBM.
//!
//! | rule | rewrite | condition |
//! |---|---|---|
//! | `conv-relu`, `conv-sigmoid`, `conv-tanh`, `conv-gelu` (`-b`: with bias) | `Act(Conv(x, w[, b])) -> FusedConv[act](x, w[, b])` | `Gelu` with `approximate` none or tanh |
//! | `conv-silu`, `conv-silu-left` (`-b`) | `Conv(..) * Sigmoid(Conv(..)) -> FusedConv[silu](..)` | the product has the conv's type |
//! | `conv-residual`, `conv-residual-left` (`-b`) | `Conv(x, w[, b]) + r -> FusedConv[none, residual=1](x, w[, b], r)` | r has the conv's type |
//! | `fused-conv-relu`, ... (`-b`, `-r`, `-br`) | `Act(FusedConv[none, residual ≠ 2](..)) -> FusedConv[act](..)` | as `conv-relu` |
//! | `fused-conv-silu`, `-left` (`-b`, `-r`, `-br`) | `FusedConv[none](..) * Sigmoid(FusedConv[none](..)) -> FusedConv[silu](..)` | as `conv-silu` |
//! | `fused-conv-residual-post`, `-left` (`-b`) | `FusedConv[act, residual=0](x, w[, b]) + r -> FusedConv[act, residual=2](x, w[, b], r)` | act is not none; r has the result's type |
//! | `gemm-relu`, `gemm-sigmoid`, `gemm-tanh`, `gemm-gelu` (`-c`: with C) | `Act(Gemm(a, b[, c])) -> FusedGemm[act](a, b[, c])` | as `conv-relu` |
//! | `gemm-relu-reshape`, ... (`-c-reshape`) | `Act(Reshape(Gemm(..))) -> Reshape(FusedGemm[act](..))` (a linear layer over a sequence) | as above |
//! | `matmul-relu`, `matmul-sigmoid`, `matmul-tanh`, `matmul-gelu` | `Act(MatMul(a, b)) -> FusedGemm[act](a, b)` | a, b 2-D float |
//! | `gemm-residual`, `-left` (`-reshape`: through a linear layer's Reshape) | `Gemm(a, b, c) + r -> FusedGemm[none, residual=1](a, b, c, r)` (`Reshape(Gemm(..)) + r -> Reshape(FusedGemm[..](a, b, c, Reshape(r)))`) | float; r has the sum's type (no broadcast) |
//! | `gelu-erf` | `(x * (Erf(x / c1) + 1)) * c2 -> Gelu(x)` | c1 a splat of √2, c2 a splat of ½ (one rounding of the formula instead of five) |
//!
//! Every rule has a numeric test against the interpreter (`tests/opt_rules.rs`).

use super::{rule, var, Rule};
use crate::graph::{AttrValue, Attrs, FusedAct, Op};
use crate::opt::analysis::{add_op, attrs_of, ty_of, OptEGraph};
use egg::{Id, Subst};

/// FusedConv's attributes: the convolution's plus the epilogue.
fn fused_attrs(conv: &Attrs, act: FusedAct, residual: i64) -> Attrs {
    conv.clone()
        .with("activation", AttrValue::Str(act.name().to_string()))
        .with("residual", AttrValue::Int(residual))
}

/// The epilogue of a FusedConv's attributes.
fn epilogue(a: &Attrs) -> Option<(FusedAct, i64)> {
    Some((
        FusedAct::parse(a.str("activation").ok()?)?,
        a.int("residual").ok()?,
    ))
}

/// The convolution's operands in a matched pattern: `?x ?w` plus `?b` and `?r` when present.
fn conv_operands(s: &Subst, names: &[&str]) -> Vec<Id> {
    names.iter().map(|n| s[var(n)]).collect()
}

/// `(Conv ?c ?x ?w[ ?b])` or `(FusedConv ?c ?x ?w[ ?b][ ?r])` as a pattern, with its operand names.
fn conv_pattern(op: &str, bias: bool, residual: bool) -> (String, Vec<&'static str>) {
    let mut names = vec!["?x", "?w"];
    if bias {
        names.push("?b");
    }
    if residual {
        names.push("?r");
    }
    (format!("({op} ?c {})", names.join(" ")), names)
}

/// Adds `FusedConv[a]` over the matched convolution's operands, when it has the type of the
/// class it replaces.
fn add_fused_conv(
    eg: &mut OptEGraph,
    root: Id,
    a: &Attrs,
    s: &Subst,
    names: &[&str],
) -> Option<Id> {
    let id = add_op(eg, Op::FusedConv, a, &conv_operands(s, names))?;
    same_type(eg, id, root).then_some(id)
}

/// The residual mode of a FusedConv that has no activation yet and whose residual input is
/// present exactly when the pattern has one (`residual`).
fn bare_residual(conv: &Attrs, residual: bool) -> Option<i64> {
    let (FusedAct::None, res) = epilogue(conv)? else {
        return None;
    };
    (res == i64::from(residual)).then_some(res)
}

/// True when `class` has the type of `like` (so fusing never changes a result's type).
fn same_type(eg: &OptEGraph, class: Id, like: Id) -> bool {
    matches!((ty_of(eg, class), ty_of(eg, like)), (Some(a), Some(b)) if a == b)
}

/// Name suffix of a variant: `-b` with bias, `-r` with residual.
fn suffix(bias: bool, residual: bool) -> &'static str {
    match (bias, residual) {
        (false, false) => "",
        (true, false) => "-b",
        (false, true) => "-r",
        (true, true) => "-br",
    }
}

/// Activations whose op is one node over the conv: `(Relu ?a CONV)` etc.
const ACT_OPS: [(&str, Op); 4] = [
    ("relu", Op::Relu),
    ("sigmoid", Op::Sigmoid),
    ("tanh", Op::Tanh),
    ("gelu", Op::Gelu),
];

/// The fusion rules.
pub fn rules() -> Vec<Rule> {
    let mut v = Vec::new();
    for bias in [false, true] {
        // Act(Conv) -> FusedConv[act].
        let (conv, names) = conv_pattern("Conv", bias, false);
        for (act_name, op) in ACT_OPS {
            let names = names.clone();
            v.push(rule(
                &format!("conv-{act_name}{}", suffix(bias, false)),
                &format!("({} ?a {conv})", op.name()),
                move |eg, root, s| {
                    let act = FusedAct::of_op(op, attrs_of(eg, s[var("?a")])?)?;
                    let a = fused_attrs(attrs_of(eg, s[var("?c")])?, act, 0);
                    add_fused_conv(eg, root, &a, s, &names)
                },
            ));
        }
        // Conv * Sigmoid(Conv) -> FusedConv[silu].
        for (left, pattern) in [
            (false, format!("(Mul ?m {conv} (Sigmoid ?s {conv}))")),
            (true, format!("(Mul ?m (Sigmoid ?s {conv}) {conv})")),
        ] {
            let names = names.clone();
            v.push(rule(
                &format!(
                    "conv-silu{}{}",
                    if left { "-left" } else { "" },
                    suffix(bias, false)
                ),
                &pattern,
                move |eg, root, s| {
                    let a = fused_attrs(attrs_of(eg, s[var("?c")])?, FusedAct::Silu, 0);
                    add_fused_conv(eg, root, &a, s, &names)
                },
            ));
        }
        // Conv + r -> FusedConv[none, residual before the activation].
        for (left, pattern) in [
            (false, format!("(Add ?p {conv} ?r)")),
            (true, format!("(Add ?p ?r {conv})")),
        ] {
            let mut names = names.clone();
            names.push("?r");
            v.push(rule(
                &format!(
                    "conv-residual{}{}",
                    if left { "-left" } else { "" },
                    suffix(bias, false)
                ),
                &pattern,
                move |eg, root, s| {
                    if !same_type(eg, s[var("?r")], root) {
                        return None;
                    }
                    let a = fused_attrs(attrs_of(eg, s[var("?c")])?, FusedAct::None, 1);
                    add_fused_conv(eg, root, &a, s, &names)
                },
            ));
        }
        for residual in [false, true] {
            // Act(FusedConv[none]) -> FusedConv[act], keeping a residual added before it.
            let (fused, names) = conv_pattern("FusedConv", bias, residual);
            for (act_name, op) in ACT_OPS {
                let names = names.clone();
                v.push(rule(
                    &format!("fused-conv-{act_name}{}", suffix(bias, residual)),
                    &format!("({} ?a {fused})", op.name()),
                    move |eg, root, s| {
                        let act = FusedAct::of_op(op, attrs_of(eg, s[var("?a")])?)?;
                        let conv = attrs_of(eg, s[var("?c")])?;
                        let res = bare_residual(conv, residual)?;
                        let a = fused_attrs(conv, act, res);
                        add_fused_conv(eg, root, &a, s, &names)
                    },
                ));
            }
            for (left, pattern) in [
                (false, format!("(Mul ?m {fused} (Sigmoid ?s {fused}))")),
                (true, format!("(Mul ?m (Sigmoid ?s {fused}) {fused})")),
            ] {
                let names = names.clone();
                v.push(rule(
                    &format!(
                        "fused-conv-silu{}{}",
                        if left { "-left" } else { "" },
                        suffix(bias, residual)
                    ),
                    &pattern,
                    move |eg, root, s| {
                        let conv = attrs_of(eg, s[var("?c")])?;
                        let res = bare_residual(conv, residual)?;
                        let a = fused_attrs(conv, FusedAct::Silu, res);
                        add_fused_conv(eg, root, &a, s, &names)
                    },
                ));
            }
        }
        // FusedConv[act] + r -> FusedConv[act, residual after the activation].
        let (fused, names) = conv_pattern("FusedConv", bias, false);
        for (left, pattern) in [
            (false, format!("(Add ?p {fused} ?r)")),
            (true, format!("(Add ?p ?r {fused})")),
        ] {
            let mut names = names.clone();
            names.push("?r");
            v.push(rule(
                &format!(
                    "fused-conv-residual-post{}{}",
                    if left { "-left" } else { "" },
                    suffix(bias, false)
                ),
                &pattern,
                move |eg, root, s| {
                    if !same_type(eg, s[var("?r")], root) {
                        return None;
                    }
                    let conv = attrs_of(eg, s[var("?c")])?;
                    let (act, 0) = epilogue(conv)? else {
                        return None;
                    };
                    if act == FusedAct::None {
                        return None;
                    }
                    let a = fused_attrs(conv, act, 2);
                    add_fused_conv(eg, root, &a, s, &names)
                },
            ));
        }
    }
    for (act_name, op) in ACT_OPS {
        for (with_c, reshape) in [(false, false), (true, false), (false, true), (true, true)] {
            let gemm = if with_c {
                "(Gemm ?g ?a1 ?b1 ?c1)"
            } else {
                "(Gemm ?g ?a1 ?b1)"
            };
            let inner = if reshape {
                format!("(Reshape ?r {gemm})")
            } else {
                gemm.to_string()
            };
            let name = format!(
                "gemm-{act_name}{}{}",
                if with_c { "-c" } else { "" },
                if reshape { "-reshape" } else { "" }
            );
            v.push(rule(
                &name,
                &format!("({} ?a {inner})", op.name()),
                move |eg, root, s| {
                    let act = FusedAct::of_op(op, attrs_of(eg, s[var("?a")])?)?;
                    let a = attrs_of(eg, s[var("?g")])?
                        .clone()
                        .with("activation", AttrValue::Str(act.name().to_string()));
                    let mut ins = vec![s[var("?a1")], s[var("?b1")]];
                    if with_c {
                        ins.push(s[var("?c1")]);
                    }
                    let fused = add_op(eg, Op::FusedGemm, &a, &ins)?;
                    let id = if reshape {
                        let r = attrs_of(eg, s[var("?r")])?.clone();
                        add_op(eg, Op::Reshape, &r, &[fused])?
                    } else {
                        fused
                    };
                    same_type(eg, id, root).then_some(id)
                },
            ));
        }
        v.push(rule(
            &format!("matmul-{act_name}"),
            &format!("({} ?a (MatMul ?m ?a1 ?b1))", op.name()),
            move |eg, root, s| {
                let (x, w) = (s[var("?a1")], s[var("?b1")]);
                let two_d =
                    |c: Id| ty_of(eg, c).is_some_and(|t| t.rank() == 2 && t.dtype.is_float());
                let plain = attrs_of(eg, s[var("?m")]).is_some_and(super::layout::plain_matmul);
                if !two_d(x) || !two_d(w) || !plain {
                    return None;
                }
                let act = FusedAct::of_op(op, attrs_of(eg, s[var("?a")])?)?;
                let a = super::gemm_attrs(1.0, 1.0, false, false)
                    .with("activation", AttrValue::Str(act.name().to_string()));
                let id = add_op(eg, Op::FusedGemm, &a, &[x, w])?;
                same_type(eg, id, root).then_some(id)
            },
        ));
    }
    // Gemm(a, b, c) + r -> FusedGemm[none, residual=1](a, b, c, r), directly or through the
    // Reshape of a linear layer over a sequence (r is reshaped to the product's [M, N], a view).
    for (name, pattern) in [
        ("gemm-residual", "(Add ?s (Gemm ?g ?a ?b ?c) ?r)"),
        ("gemm-residual-left", "(Add ?s ?r (Gemm ?g ?a ?b ?c))"),
        (
            "gemm-residual-reshape",
            "(Add ?s (Reshape ?h (Gemm ?g ?a ?b ?c)) ?r)",
        ),
        (
            "gemm-residual-reshape-left",
            "(Add ?s ?r (Reshape ?h (Gemm ?g ?a ?b ?c)))",
        ),
    ] {
        let reshape = name.contains("reshape");
        v.push(rule(name, pattern, move |eg, root, s| {
            let ops = [s[var("?a")], s[var("?b")], s[var("?c")]];
            let gemm = eg.lookup(crate::opt::lang::TNode::op(Op::Gemm, s[var("?g")], &ops))?;
            let (tg, r) = (ty_of(eg, gemm)?.clone(), s[var("?r")]);
            if !tg.dtype.is_float() || !same_type(eg, r, root) {
                return None;
            }
            let a = attrs_of(eg, s[var("?g")])?
                .clone()
                .with(
                    "activation",
                    AttrValue::Str(FusedAct::None.name().to_string()),
                )
                .with("residual", AttrValue::Int(1));
            if !reshape {
                let id = add_op(eg, Op::FusedGemm, &a, &[ops[0], ops[1], ops[2], r])?;
                return same_type(eg, id, root).then_some(id);
            }
            let flat: Vec<i64> = tg.shape.iter().map(|&d| d as i64).collect();
            let flat = Attrs::new().with("shape", AttrValue::Ints(flat));
            let r2 = add_op(eg, Op::Reshape, &flat, &[r])?;
            let fused = add_op(eg, Op::FusedGemm, &a, &[ops[0], ops[1], ops[2], r2])?;
            let back = attrs_of(eg, s[var("?h")])?.clone();
            let id = add_op(eg, Op::Reshape, &back, &[fused])?;
            same_type(eg, id, root).then_some(id)
        }));
    }
    v.push(rule(
        "gelu-erf",
        "(Mul ?m2 (Mul ?m1 ?x (Add ?a (Erf ?e (Div ?d ?x ?c1)) ?one)) ?half)",
        |eg, root, s| {
            let x = s[var("?x")];
            let splat = |name: &str| eg[s[var(name)]].data.splat;
            let close = |v: f64, want: f64| (v - want).abs() <= want * 1e-6;
            if !close(splat("?c1")?, std::f64::consts::SQRT_2)
                || splat("?one")? != 1.0
                || splat("?half")? != 0.5
                || !same_type(eg, x, root)
                || !ty_of(eg, x)?.dtype.is_float()
            {
                return None;
            }
            let a = Attrs::new().with("approximate", AttrValue::Str("none".into()));
            add_op(eg, Op::Gelu, &a, &[x])
        },
    ));
    v
}
