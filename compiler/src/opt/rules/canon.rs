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

use super::{is_identity, perm_of, rule, var, Rule};
use crate::graph::{AttrValue, Attrs, Op};
use crate::opt::analysis::{add_op, attrs_of, ty_of, OptEGraph};
use egg::{Id, Subst};

/// `?x` when `?c` is a float constant splat of `value` and the matched op's result has x's type.
fn drop_splat(eg: &OptEGraph, s: &Subst, result_like: Id, value: f64) -> Option<Id> {
    let (x, c) = (s[var("?x")], s[var("?c")]);
    let splat = eg[c].data.splat?;
    let (tx, tr) = (ty_of(eg, x)?, ty_of(eg, result_like)?);
    (splat == value && tx == tr && tx.dtype.is_float()).then_some(x)
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
