//! Tiling: the tile shape of each matrix product, chosen by cost among a few candidates.
//!
//! The lowering of a product (`lower/matmul.rs`) cuts the output into tiles of at most
//! `pe_cols` rows by a moving chunk of columns, one PSUM bank wide (`max_moving_free` columns)
//! unless the product's `tile_n` attribute asks for narrower chunks. Wide chunks stream the
//! moving operand at full rate and need fewer instructions; narrower ones give more output
//! tiles, so more PSUM banks accumulate and evacuate in turn and less of a large panel has to be
//! resident at once. Which wins depends on the shape and on what the kernel overlaps, so this
//! phase only enumerates: every product without a `tile_n` gets the alternatives
//! `tile_n = max_moving_free / 2` and `/ 4` in its e-class (when its output has more columns
//! than the candidate, so the candidate changes the tiling), and extraction keeps the one the
//! cost model predicts fastest by more than [`TILE_N_MARGIN`]. The attribute changes no
//! value: the interpreter ignores it.
//!
//! | rule | rewrite | condition |
//! |---|---|---|
//! | `matmul-tile-nW`, `gemm-tile-nW` (`-c`: with C), `fused-gemm-tile-nW` (`-c`) | `P(a, b[, c]) -> P[tile_n = W](a, b[, c])` | float output with more than W columns, no `tile_n` yet |

use super::{rule, var, Rule};
use crate::graph::{AttrValue, Op};
use crate::opt::analysis::{add_op, attrs_of, ty_of};
use tahoma_isa::machine;

/// The attribute naming a product's moving chunk width (columns per output tile).
pub const TILE_N: &str = "tile_n";

/// How much cheaper a `tile_n` alternative must be predicted than the default tiling for
/// extraction to take it (extraction charges it this fraction more). The kernel-IR model ranks
/// products well but its absolute error on one product can exceed the few percent two tilings
/// differ by: a 1024^3 GEMM is predicted 66.7k cycles at the default width and 66.2k at
/// `tile_n = 256`, and runs 53.7k and 65.3k (`tahoma bench --filter gemm`); a 512^3 one is
/// predicted 6% faster at 256 and runs 10% faster. A compiler policy, not a machine number.
pub const TILE_N_MARGIN: f64 = 0.03;

/// The narrower chunk widths offered besides the default (`max_moving_free`).
pub fn tile_n_candidates() -> Vec<u64> {
    [2, 4]
        .iter()
        .map(|d| machine::MAX_MOVING_FREE / d)
        .filter(|&w| w > 0)
        .collect()
}

/// The tiling rules (see the module doc).
pub fn rules() -> Vec<Rule> {
    let products = [
        ("matmul", Op::MatMul, 2),
        ("gemm", Op::Gemm, 2),
        ("gemm", Op::Gemm, 3),
        ("fused-gemm", Op::FusedGemm, 2),
        ("fused-gemm", Op::FusedGemm, 3),
    ];
    let mut v = Vec::new();
    for (stem, op, arity) in products {
        let operands = ["?a", "?b", "?c"][..arity].to_vec();
        let suffix = if arity == 3 { "-c" } else { "" };
        for w in tile_n_candidates() {
            let ops = operands.clone();
            v.push(rule(
                &format!("{stem}-tile-n{w}{suffix}"),
                &format!("({} ?p {})", op.name(), operands.join(" ")),
                move |eg, root, s| {
                    let attrs = attrs_of(eg, s[var("?p")])?;
                    if attrs.get(TILE_N).is_some() {
                        return None;
                    }
                    let ty = ty_of(eg, root)?;
                    let cols = *ty.shape.last()? as u64;
                    if !ty.dtype.is_float() || cols <= w {
                        return None;
                    }
                    let a = attrs.clone().with(TILE_N, AttrValue::Int(w as i64));
                    let ins: Vec<_> = ops.iter().map(|n| s[var(n)]).collect();
                    add_op(eg, op, &a, &ins)
                },
            ));
        }
    }
    v
}
