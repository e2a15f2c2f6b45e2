//! Normalisations: `Softmax`, `LogSoftmax`, `Hardmax`, `LayerNormalization`,
//! `BatchNormalization` (inference), `InstanceNormalization` and `LRN`.

use super::precision::softmax_row_narrow;
use super::value::{err, float_view, norm_axis, shaped, with_float, zip2, Result};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, Axis, IxDyn};

/// Calls `f` on every contiguous row of `len` values, where rows are the trailing axes
/// `axis..` of `a` when `flatten_tail`, or only the single axis `axis` otherwise.
fn for_rows(
    a: &ArrayD<f32>,
    axis: usize,
    flatten_tail: bool,
    mut f: impl FnMut(&mut [f32]),
) -> ArrayD<f32> {
    let rank = a.ndim();
    if flatten_tail || axis + 1 == rank {
        let mut v = a.as_standard_layout().into_owned();
        let len: usize = a.shape()[axis..].iter().product();
        if len > 0 {
            if let Some(s) = v.as_slice_mut() {
                s.chunks_mut(len).for_each(&mut f);
            }
        }
        return v;
    }
    // Move `axis` last, work on contiguous rows, move it back.
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
    perm.push(axis);
    let moved = a
        .view()
        .permuted_axes(perm.clone())
        .as_standard_layout()
        .into_owned();
    let done = for_rows(&moved, rank - 1, false, f);
    let mut inv = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    done.permuted_axes(inv).as_standard_layout().into_owned()
}

/// `Softmax` along `axis`. `legacy` (opset < 13) normalises over all axes from `axis` on.
/// Half-precision tensors round every step to their type, as onnx's reference does
/// ([`softmax_row_narrow`]); float32 sums in f64.
pub fn softmax(x: &Tensor, axis: i64, legacy: bool) -> Result<Tensor> {
    let rank = x.shape().len();
    let ax = norm_axis("Softmax", axis, rank)?;
    let dtype = x.dtype();
    if matches!(dtype, DType::F16 | DType::BF16) {
        return with_float("Softmax", x, |a| {
            Ok(for_rows(a, ax, legacy, |r| softmax_row_narrow(dtype, r)))
        });
    }
    with_float("Softmax", x, |a| {
        Ok(for_rows(a, ax, legacy, |r| {
            let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0.0f64;
            for v in r.iter_mut() {
                *v = (*v - m).exp();
                s += *v as f64;
            }
            let s = s as f32;
            r.iter_mut().for_each(|v| *v /= s);
        }))
    })
}

/// `LogSoftmax` along `axis` (see [`softmax`] for `legacy`).
pub fn log_softmax(x: &Tensor, axis: i64, legacy: bool) -> Result<Tensor> {
    let rank = x.shape().len();
    let ax = norm_axis("LogSoftmax", axis, rank)?;
    with_float("LogSoftmax", x, |a| {
        Ok(for_rows(a, ax, legacy, |r| {
            let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = r.iter().map(|&v| ((v - m) as f64).exp()).sum();
            let l = s.ln() as f32;
            r.iter_mut().for_each(|v| *v = *v - m - l);
        }))
    })
}

/// `Hardmax`: one-hot of the first maximum along `axis` (see [`softmax`] for `legacy`).
pub fn hardmax(x: &Tensor, axis: i64, legacy: bool) -> Result<Tensor> {
    let rank = x.shape().len();
    let ax = norm_axis("Hardmax", axis, rank)?;
    with_float("Hardmax", x, |a| {
        Ok(for_rows(a, ax, legacy, |r| {
            let mut best = 0;
            for i in 0..r.len() {
                if r[i] > r[best] {
                    best = i;
                }
            }
            r.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = if i == best { 1.0 } else { 0.0 });
        }))
    })
}

/// Results of `LayerNormalization`: `y`, and the per-row `mean` and `inv_std_dev`
/// (shape `x.shape[..axis]` followed by ones).
pub struct LayerNormOutputs {
    pub y: Tensor,
    pub mean: Tensor,
    pub inv_std_dev: Tensor,
}

/// `LayerNormalization` over the axes `axis..`; `scale` and `bias` broadcast to those axes.
pub fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    epsilon: f32,
) -> Result<LayerNormOutputs> {
    let op = "LayerNormalization";
    let shape = x.shape().to_vec();
    let ax = norm_axis(op, axis, shape.len())?;
    let a = float_view(op, x)?;
    let cols: usize = shape[ax..].iter().product();
    let mut y = a.as_standard_layout().into_owned();
    let mut means = Vec::new();
    let mut invs = Vec::new();
    if cols > 0 {
        if let Some(s) = y.as_slice_mut() {
            for r in s.chunks_mut(cols) {
                let mean = r.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
                let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
                let inv = 1.0 / (var + epsilon as f64).sqrt();
                r.iter_mut()
                    .for_each(|v| *v = ((*v as f64 - mean) * inv) as f32);
                means.push(mean as f32);
                invs.push(inv as f32);
            }
        }
    }
    let sc = float_view(op, scale)?;
    let tail = &shape[ax..];
    if sc.broadcast(IxDyn(tail)).is_none() {
        return err(
            op,
            format!(
                "scale shape {:?} does not broadcast to normalised shape {tail:?}",
                sc.shape()
            ),
        );
    }
    let mut y = zip2(op, &y, &sc, |p, q| p * q)?;
    if let Some(b) = bias {
        let bv = float_view(op, b)?;
        if bv.broadcast(IxDyn(tail)).is_none() {
            return err(
                op,
                format!(
                    "bias shape {:?} does not broadcast to normalised shape {tail:?}",
                    bv.shape()
                ),
            );
        }
        y = zip2(op, &y, &bv, |p, q| p + q)?;
    }
    if y.shape() != shape.as_slice() {
        return err(
            op,
            format!("scale/bias change the output shape to {:?}", y.shape()),
        );
    }
    let mut stat_shape = shape[..ax].to_vec();
    stat_shape.extend(std::iter::repeat_n(1, shape.len() - ax));
    let dt = x.dtype();
    Ok(LayerNormOutputs {
        y: super::value::float_out(op, dt, y)?,
        mean: Tensor::F32(shaped(op, &stat_shape, means)?),
        inv_std_dev: Tensor::F32(shaped(op, &stat_shape, invs)?),
    })
}

fn per_channel(op: &str, t: &Tensor, c: usize, what: &str) -> Result<Vec<f32>> {
    let v = float_view(op, t)?;
    if v.len() != c {
        return err(
            op,
            format!(
                "{what} has {} values, expected one per channel ({c})",
                v.len()
            ),
        );
    }
    Ok(v.iter().copied().collect())
}

/// `BatchNormalization` in inference mode: `(x - mean) / sqrt(var + eps) * scale + bias`
/// per channel (axis 1).
pub fn batch_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    epsilon: f32,
) -> Result<Tensor> {
    let op = "BatchNormalization";
    if x.shape().len() < 2 {
        return err(
            op,
            format!("input must have rank >= 2 (N, C, ...), got {:?}", x.shape()),
        );
    }
    let c = x.shape()[1];
    let s = per_channel(op, scale, c, "scale")?;
    let b = per_channel(op, bias, c, "B")?;
    let m = per_channel(op, mean, c, "input_mean")?;
    let v = per_channel(op, var, c, "input_var")?;
    let mul: Vec<f32> = (0..c).map(|i| s[i] / (v[i] + epsilon).sqrt()).collect();
    let add: Vec<f32> = (0..c).map(|i| b[i] - m[i] * mul[i]).collect();
    with_float(op, x, |a| {
        let mut y = a.clone();
        for (ci, mut lane) in y.axis_iter_mut(Axis(1)).enumerate() {
            lane.mapv_inplace(|t| t * mul[ci] + add[ci]);
        }
        Ok(y)
    })
}

/// `InstanceNormalization`: per (n, c) normalisation over the spatial axes.
pub fn instance_norm(x: &Tensor, scale: &Tensor, bias: &Tensor, epsilon: f32) -> Result<Tensor> {
    let op = "InstanceNormalization";
    let shape = x.shape().to_vec();
    if shape.len() < 3 {
        return err(op, format!("input must have rank >= 3, got {shape:?}"));
    }
    let c = shape[1];
    let s = per_channel(op, scale, c, "scale")?;
    let b = per_channel(op, bias, c, "B")?;
    let inner: usize = shape[2..].iter().product();
    with_float(op, x, |a| {
        let mut y = a.as_standard_layout().into_owned();
        if inner > 0 {
            if let Some(sl) = y.as_slice_mut() {
                for (i, r) in sl.chunks_mut(inner).enumerate() {
                    let ch = i % c;
                    let mean = r.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
                    let var =
                        r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / inner as f64;
                    let inv = 1.0 / (var + epsilon as f64).sqrt();
                    r.iter_mut()
                        .for_each(|v| *v = ((*v as f64 - mean) * inv) as f32 * s[ch] + b[ch]);
                }
            }
        }
        Ok(y)
    })
}

/// Parameters of `LRN` (local response normalisation across channels).
#[derive(Clone, Debug, PartialEq)]
pub struct LrnParams {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
}

/// `LRN`: `x / (bias + alpha / size * sum of x^2 over a window of channels) ^ beta`.
pub fn lrn(x: &Tensor, p: &LrnParams) -> Result<Tensor> {
    let op = "LRN";
    let shape = x.shape().to_vec();
    if shape.len() < 3 {
        return err(
            op,
            format!("input must have rank >= 3 (N, C, ...), got {shape:?}"),
        );
    }
    if p.size == 0 {
        return err(op, "size must be positive");
    }
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let lo = (p.size - 1) / 2;
    let hi = p.size - 1 - lo;
    with_float(op, x, |a| {
        let src = a.as_standard_layout().into_owned();
        let s = src.as_slice().unwrap_or(&[]);
        let mut out = vec![0.0f32; s.len()];
        for ni in 0..n {
            for ci in 0..c {
                let c0 = ci.saturating_sub(lo);
                let c1 = (ci + hi).min(c - 1);
                for k in 0..inner {
                    let mut sq = 0.0f64;
                    for cj in c0..=c1 {
                        let v = s[(ni * c + cj) * inner + k] as f64;
                        sq += v * v;
                    }
                    let idx = (ni * c + ci) * inner + k;
                    let den =
                        (p.bias as f64 + p.alpha as f64 / p.size as f64 * sq).powf(p.beta as f64);
                    out[idx] = (s[idx] as f64 / den) as f32;
                }
            }
        }
        shaped(op, &shape, out)
    })
}
