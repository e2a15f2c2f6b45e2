//! Matrix products: `MatMul` (numpy semantics: 1-D promotion and broadcast batch axes) and
//! `Gemm`. Float products run on ndarray's f32 GEMM; integer products use plain loops.

use super::value::{any_as_f32, broadcast_shapes, err, float_out, float_view, shaped, Result};
use crate::tensor::Tensor;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Row-major offsets of every batch of a broadcast batch shape into an operand's batch shape.
fn batch_offsets(op: &str, full: &[usize], own: &[usize], mat: usize) -> Result<Vec<usize>> {
    let off = full.len() - own.len();
    let total: usize = full.iter().product();
    let mut strides = vec![0usize; own.len()];
    let mut s = mat;
    for i in (0..own.len()).rev() {
        strides[i] = if own[i] == 1 { 0 } else { s };
        s *= own[i];
    }
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; full.len()];
    for _ in 0..total {
        let mut o = 0;
        for (i, st) in strides.iter().enumerate() {
            let d = idx[off + i];
            if own[i] != 1 && d >= own[i] {
                return err(
                    op,
                    format!("batch shape {own:?} does not broadcast to {full:?}"),
                );
            }
            o += d * st;
        }
        out.push(o);
        for i in (0..full.len()).rev() {
            idx[i] += 1;
            if idx[i] < full[i] {
                break;
            }
            idx[i] = 0;
        }
    }
    Ok(out)
}

struct MatMulPlan {
    m: usize,
    k: usize,
    n: usize,
    a_offs: Vec<usize>,
    b_offs: Vec<usize>,
    out_shape: Vec<usize>,
}

fn plan(op: &str, sa: &[usize], sb: &[usize]) -> Result<MatMulPlan> {
    if sa.is_empty() || sb.is_empty() {
        return err(
            op,
            format!("operands must have rank >= 1, got {sa:?} and {sb:?}"),
        );
    }
    let a2: Vec<usize> = if sa.len() == 1 {
        vec![1, sa[0]]
    } else {
        sa.to_vec()
    };
    let b2: Vec<usize> = if sb.len() == 1 {
        vec![sb[0], 1]
    } else {
        sb.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return err(op, format!("inner dimensions differ: {sa:?} x {sb:?}"));
    }
    let ba = &a2[..a2.len() - 2];
    let bb = &b2[..b2.len() - 2];
    let batch = broadcast_shapes(op, &[ba, bb])?;
    let a_offs = batch_offsets(op, &batch, ba, m * k)?;
    let b_offs = batch_offsets(op, &batch, bb, k * n)?;
    let mut out_shape = batch.clone();
    if sa.len() > 1 {
        out_shape.push(m);
    }
    if sb.len() > 1 {
        out_shape.push(n);
    }
    Ok(MatMulPlan {
        m,
        k,
        n,
        a_offs,
        b_offs,
        out_shape,
    })
}

/// Row-major f32 matrix product `c[m,n] (+)= a[m,k] * b[k,n]` on slices.
pub fn gemm_f32(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    let (Ok(av), Ok(bv), Ok(mut cv)) = (
        ArrayView2::from_shape((m, k), a),
        ArrayView2::from_shape((k, n), b),
        ArrayViewMut2::from_shape((m, n), c),
    ) else {
        return;
    };
    general_mat_mul(1.0, &av, &bv, if accumulate { 1.0 } else { 0.0 }, &mut cv);
}

/// `MatMul` with numpy semantics.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = "MatMul";
    if a.dtype() != b.dtype() {
        return err(
            op,
            format!("operand types differ: {} and {}", a.dtype(), b.dtype()),
        );
    }
    let p = plan(op, a.shape(), b.shape())?;
    let (m, k, n) = (p.m, p.k, p.n);
    match (a, b) {
        (Tensor::I64(_) | Tensor::I32(_), _) => {
            let av: Vec<i64> = a.to_i64_vec();
            let bv: Vec<i64> = b.to_i64_vec();
            let mut out = vec![0i64; p.a_offs.len() * m * n];
            for (bi, (&ao, &bo)) in p.a_offs.iter().zip(&p.b_offs).enumerate() {
                for i in 0..m {
                    for kk in 0..k {
                        let x = av[ao + i * k + kk];
                        for j in 0..n {
                            let o = &mut out[bi * m * n + i * n + j];
                            *o = o.wrapping_add(x.wrapping_mul(bv[bo + kk * n + j]));
                        }
                    }
                }
            }
            let t = Tensor::I64(shaped(op, &p.out_shape, out)?);
            Ok(super::elementwise::cast(&t, a.dtype()))
        }
        (Tensor::Bool(_), _) => err(op, "bool operands are not supported"),
        _ => {
            let av = float_view(op, a)?;
            let bv = float_view(op, b)?;
            let asl = super::value::contiguous(&av);
            let bsl = super::value::contiguous(&bv);
            let mut out = vec![0f32; p.a_offs.len() * m * n];
            for (bi, (&ao, &bo)) in p.a_offs.iter().zip(&p.b_offs).enumerate() {
                gemm_f32(
                    &asl[ao..ao + m * k],
                    &bsl[bo..bo + k * n],
                    &mut out[bi * m * n..(bi + 1) * m * n],
                    m,
                    k,
                    n,
                    false,
                );
            }
            float_out(op, a.dtype(), shaped(op, &p.out_shape, out)?)
        }
    }
}

/// Attributes of `Gemm`: `Y = alpha * op(A) * op(B) + beta * C`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmParams {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Default for GemmParams {
    fn default() -> Self {
        GemmParams {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        }
    }
}

/// `Gemm` on 2-D operands; `C` broadcasts unidirectionally to `[M, N]`.
pub fn gemm(a: &Tensor, b: &Tensor, c: Option<&Tensor>, p: &GemmParams) -> Result<Tensor> {
    let op = "Gemm";
    if a.shape().len() != 2 || b.shape().len() != 2 {
        return err(
            op,
            format!(
                "A and B must be 2-D, got {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        );
    }
    let dt = a.dtype();
    let is_int = matches!(dt, crate::tensor::DType::I64 | crate::tensor::DType::I32);
    let av = if is_int {
        any_as_f32(a)
    } else {
        float_view(op, a)?.into_owned()
    };
    let bv = if is_int {
        any_as_f32(b)
    } else {
        float_view(op, b)?.into_owned()
    };
    let av = av
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| super::value::InterpError::new(op, e.to_string()))?;
    let bv = bv
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| super::value::InterpError::new(op, e.to_string()))?;
    let av = if p.trans_a { av.reversed_axes() } else { av };
    let bv = if p.trans_b { bv.reversed_axes() } else { bv };
    let (m, k) = av.dim();
    let (k2, n) = bv.dim();
    if k != k2 {
        return err(
            op,
            format!("inner dimensions differ: op(A) is {m}x{k}, op(B) is {k2}x{n}"),
        );
    }
    let mut y = ndarray::Array2::<f32>::zeros((m, n));
    if let (Some(c), true) = (c, p.beta != 0.0) {
        let cv = any_as_f32(c);
        let Some(cb) = cv.broadcast(ndarray::IxDyn(&[m, n])) else {
            return err(
                op,
                format!(
                    "C of shape {:?} does not broadcast to [{m}, {n}]",
                    c.shape()
                ),
            );
        };
        y.iter_mut()
            .zip(cb.iter())
            .for_each(|(o, &v)| *o = p.beta * v);
        general_mat_mul(p.alpha, &av, &bv, 1.0, &mut y);
    } else {
        general_mat_mul(p.alpha, &av, &bv, 0.0, &mut y);
    }
    let y = y.into_dyn();
    if is_int {
        return Ok(super::elementwise::cast(&Tensor::F32(y), dt));
    }
    float_out(op, dt, y)
}
