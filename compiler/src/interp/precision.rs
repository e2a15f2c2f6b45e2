//! The interpreter's precision policy for half-precision tensors (float16, bfloat16): which
//! ops compute in a wider type and round once, and which reproduce the step-by-step rounding
//! of onnx's reference evaluator, plus the rounding and summation helpers those ops share.
//!
//! The oracle the interpreter is held to is onnx's reference evaluator (`onnx.reference`,
//! numpy), which produced the node tests' goldens: it evaluates an op's formula with numpy
//! arrays of the tensor's own type, so every numpy step rounds to that type. numpy (float16)
//! and ml_dtypes (bfloat16) evaluate one elementwise step in f32 and round its result once.
//! The rules, per op family:
//!
//! * **Elementwise ops** (unary math and activations, broadcasting binary ops, `Where`,
//!   `Clip`, `Cast`, comparisons): one step each, computed in f32 from the half inputs and
//!   rounded once to the result type ([`super::value::with_float`]). This is exactly numpy's
//!   and ml_dtypes's evaluation of one ufunc.
//! * **MatMul, Gemm, Conv, ConvTranspose**: products accumulate in f32 (bias, `alpha` and
//!   `beta` terms included), rounded once. For MatMul the reference's `numpy_matmul` does the
//!   same: numpy's float16 matmul accumulates in f32, and bfloat16 is promoted to f32 and cast
//!   back (checked bit for bit on the attention tests). Its Gemm would round `A·B`, the
//!   `alpha` product and the `beta` sum separately in half precision; no test covers it.
//! * **Softmax**: the reference's formula `e = exp(x - max(x)); e / sum(e)` with every step
//!   rounded to the tensor's type — the difference, the exponential, the row sum and the
//!   quotient — and the row sum accumulated as numpy accumulates that type along a contiguous
//!   axis ([`numpy_sum`]): float16 in f32 by numpy's pairwise summation, rounded once;
//!   bfloat16 (ml_dtypes has no widening reduction loop) rounded to bfloat16 after every
//!   addition. (Over a non-innermost axis numpy rounds float16 partial sums too, a memory
//!   layout artefact the interpreter does not copy; no test covers it.) Rounding only the
//!   final quotient differs from the reference by one ulp in a few percent of the elements,
//!   which the backend tolerance (rtol 1e-3) does not absorb at half precision (one bfloat16
//!   ulp is 2^-8 relative): the onnx attention tests over float16/bfloat16 need the
//!   step-by-step form. See [`softmax_row_narrow`].
//! * **Reductions, pooling averages, LogSoftmax and the normalisations** (LayerNorm,
//!   BatchNorm, InstanceNorm, LRN): accumulate in f64 and round the result once. Where the
//!   reference would round differently (numpy rounds a bfloat16 sum at every partial sum, and
//!   a float16 sum over a non-innermost axis at every step; `log(softmax(x))` in float16
//!   underflows to `-inf` where the wide form is finite), the wide form is the better value
//!   and no corpus test fixes the narrow one, so the interpreter keeps it.
//!
//! float32 tensors are computed in f32 (f64 for accumulations) throughout; the backend
//! tolerance covers the accumulation order.

use crate::tensor::DType;
use half::{bf16, f16};

/// Rounds an f32 value to the nearest value of a half type `dtype` (round to nearest even),
/// returned as f32; identity for every other type.
pub fn round_to(dtype: DType) -> fn(f32) -> f32 {
    match dtype {
        DType::F16 => |v| f16::from_f32(v).to_f32(),
        DType::BF16 => |v| bf16::from_f32(v).to_f32(),
        _ => |v| v,
    }
}

/// The sum of values of type `dtype` (given as f32) as numpy's `sum` over a contiguous axis
/// computes it in that type: float16 widens to f32 ([`pairwise_sum`]) and rounds once;
/// bfloat16 rounds every partial sum to bfloat16 (left to right); other types sum in f32.
pub fn numpy_sum(dtype: DType, v: &[f32]) -> f32 {
    match dtype {
        DType::BF16 => {
            let round = round_to(DType::BF16);
            v.iter().fold(0.0, |acc, &x| round(acc + x))
        }
        _ => round_to(dtype)(pairwise_sum(v)),
    }
}

/// numpy's pairwise summation in f32: fewer than 8 values left to right; up to 128 values in
/// 8 interleaved partial sums combined as a tree, then the remainder; longer runs split in
/// two halves (the first a multiple of 8 long) summed recursively.
pub fn pairwise_sum(v: &[f32]) -> f32 {
    const LANES: usize = 8;
    const BLOCK: usize = 128; // not-hw: numpy's pairwise-summation block
    let n = v.len();
    if n < LANES {
        v.iter().fold(-0.0, |acc, &x| acc + x)
    } else if n <= BLOCK {
        let mut r = [0f32; LANES];
        r.copy_from_slice(&v[..LANES]);
        let whole = n - n % LANES;
        for chunk in v[LANES..whole].chunks_exact(LANES) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let tree = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        v[whole..].iter().fold(tree, |acc, &x| acc + x)
    } else {
        let half = n / 2;
        let split = half - half % LANES;
        pairwise_sum(&v[..split]) + pairwise_sum(&v[split..])
    }
}

/// One softmax row of a half-precision tensor (values as f32), computed as onnx's reference
/// does in the tensor's type: `d = x - max`, `e = exp(d)`, `s = sum(e)` ([`numpy_sum`]) and
/// `e / s`, each rounded to `dtype`.
pub fn softmax_row_narrow(dtype: DType, r: &mut [f32]) {
    let round = round_to(dtype);
    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in r.iter_mut() {
        *v = round(round(*v - m).exp());
    }
    let s = numpy_sum(dtype, r);
    for v in r.iter_mut() {
        *v = round(*v / s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_a_plain_sum_of_exact_values() {
        for n in [0usize, 1, 7, 8, 9, 17, 128, 129, 300, 1000] {
            let v: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
            let want: f32 = v.iter().sum();
            assert_eq!(pairwise_sum(&v), want, "n = {n}");
        }
    }

    #[test]
    fn bf16_sums_round_every_partial_sum() {
        // 256 + 1 is not a bfloat16 (8 significant bits): each addition of 1 rounds back.
        let v = [256.0, 1.0, 1.0, 1.0];
        assert_eq!(numpy_sum(DType::BF16, &v), 256.0);
        // float16 widens: 259 is exact in f32 and rounds once to float16 (259 is representable).
        assert_eq!(numpy_sum(DType::F16, &v), 259.0);
    }

    #[test]
    fn narrow_softmax_rounds_each_step() {
        let mut r = [0.5f32, 0.25, -1.0];
        softmax_row_narrow(DType::BF16, &mut r);
        for v in r {
            assert_eq!(v, bf16::from_f32(v).to_f32());
        }
        let s: f32 = r.iter().sum();
        assert!((s - 1.0).abs() < 1e-2);
    }
}
