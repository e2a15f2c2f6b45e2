//! `Resize` (and the older `Upsample`): nearest, linear and cubic interpolation, applied one
//! axis at a time, with every coordinate transformation mode, nearest rounding mode, scales
//! or sizes (with `keep_aspect_ratio_policy` and `axes`), `tf_crop_and_resize` extrapolation and
//! antialiased downsampling.

use super::elementwise::cast;
use super::value::{any_as_f32, checked_numel, contiguous, err, norm_axes, shaped, Result};
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResizeMode {
    #[default]
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CoordMode {
    #[default]
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NearestMode {
    #[default]
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AspectPolicy {
    #[default]
    Stretch,
    NotLarger,
    NotSmaller,
}

impl ResizeMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nearest" => Self::Nearest,
            "linear" | "bilinear" | "trilinear" => Self::Linear,
            "cubic" | "bicubic" => Self::Cubic,
            _ => return None,
        })
    }
}

impl CoordMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "half_pixel" => Self::HalfPixel,
            "half_pixel_symmetric" => Self::HalfPixelSymmetric,
            "pytorch_half_pixel" => Self::PytorchHalfPixel,
            "align_corners" => Self::AlignCorners,
            "asymmetric" => Self::Asymmetric,
            "tf_crop_and_resize" => Self::TfCropAndResize,
            _ => return None,
        })
    }
}

impl NearestMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "round_prefer_floor" => Self::RoundPreferFloor,
            "round_prefer_ceil" => Self::RoundPreferCeil,
            "floor" => Self::Floor,
            "ceil" => Self::Ceil,
            _ => return None,
        })
    }
}

impl AspectPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stretch" => Self::Stretch,
            "not_larger" => Self::NotLarger,
            "not_smaller" => Self::NotSmaller,
            _ => return None,
        })
    }
}

/// Attributes of `Resize`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeParams {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    pub axes: Option<Vec<i64>>,
    pub aspect: AspectPolicy,
}

impl Default for ResizeParams {
    fn default() -> Self {
        ResizeParams {
            mode: ResizeMode::Nearest,
            coord: CoordMode::HalfPixel,
            nearest: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: None,
            aspect: AspectPolicy::Stretch,
        }
    }
}

/// Taps of one output position along one axis, or `None` for the extrapolation value.
type Taps = Option<Vec<(usize, f64)>>;

fn original_coord(
    p: &ResizeParams,
    x: usize,
    scale: f64,
    l_in: usize,
    l_out: usize,
    roi: (f64, f64),
) -> f64 {
    let x = x as f64;
    let li = l_in as f64;
    // As in ONNX's definition, the resized length is `scale * length_original` (not rounded).
    let lo = scale * li;
    match p.coord {
        CoordMode::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = l_out as f64 / lo;
            let center = li / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        CoordMode::PytorchHalfPixel => {
            if lo > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordMode::AlignCorners => {
            if lo == 1.0 {
                0.0
            } else {
                x * (li - 1.0) / (lo - 1.0)
            }
        }
        CoordMode::Asymmetric => x / scale,
        CoordMode::TfCropAndResize => {
            let (s, e) = roi;
            let lo = l_out as f64;
            if l_out > 1 {
                s * (li - 1.0) + x * (e - s) * (li - 1.0) / (lo - 1.0)
            } else {
                0.5 * (s + e) * (li - 1.0)
            }
        }
    }
}

fn cubic_coeffs(t: f64, a: f64) -> [f64; 4] {
    let f = |x: f64| {
        let x = x.abs();
        if x <= 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    [f(t + 1.0), f(t), f(1.0 - t), f(2.0 - t)]
}

/// Antialiased linear/cubic taps: the filter is stretched by `1 / scale` when downsampling
/// (so every input sample under the output pixel contributes) and normalised to sum 1.
/// Taps are placed relative to `i0 = ceil(xo) - 1`, with `ratio = xo - i0` in `(0, 1]`, the
/// convention of ONNX's definition; indices beyond the edges repeat the edge sample unless
/// `exclude_outside` drops them.
fn antialias_taps(p: &ResizeParams, xo: f64, scale: f64, last: i64) -> Vec<(usize, f64)> {
    let s = scale.min(1.0);
    let a = p.cubic_coeff_a as f64;
    let (reach, filter): (f64, Box<dyn Fn(f64) -> f64>) = match p.mode {
        ResizeMode::Cubic => (
            2.0,
            Box::new(move |t: f64| {
                let t = t.abs();
                if t <= 1.0 {
                    ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
                } else if t < 2.0 {
                    ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
                } else {
                    0.0
                }
            }),
        ),
        _ => (1.0, Box::new(|t: f64| (1.0 - t.abs()).max(0.0))),
    };
    let start = (-reach / s).floor() as i64 + 1;
    let count = 2 - 2 * start;
    let i0 = xo.ceil() as i64 - 1;
    let ratio = xo - i0 as f64;
    let mut taps: Vec<(i64, f64)> = (start..start + count)
        .map(|k| (i0 + k, filter((k as f64 - ratio) * s)))
        .collect();
    if p.exclude_outside {
        taps.iter_mut().for_each(|(i, w)| {
            if *i < 0 || *i > last {
                *w = 0.0
            }
        });
    }
    let sum: f64 = taps.iter().map(|t| t.1).sum();
    if sum != 0.0 {
        taps.iter_mut().for_each(|t| t.1 /= sum);
    }
    taps.into_iter()
        .map(|(i, w)| (i.clamp(0, last.max(0)) as usize, w))
        .collect()
}

fn axis_taps(
    p: &ResizeParams,
    scale: f64,
    l_in: usize,
    l_out: usize,
    roi: (f64, f64),
) -> Vec<Taps> {
    let last = l_in as i64 - 1;
    let clampi = |i: i64| i.clamp(0, last.max(0)) as usize;
    (0..l_out)
        .map(|x| {
            let xo = original_coord(p, x, scale, l_in, l_out, roi);
            if p.coord == CoordMode::TfCropAndResize && (xo < 0.0 || xo > last as f64) {
                return None;
            }
            if p.antialias && p.mode != ResizeMode::Nearest {
                return Some(antialias_taps(p, xo, scale, last));
            }
            Some(match p.mode {
                ResizeMode::Nearest => {
                    let fl = xo.floor();
                    let frac = xo - fl;
                    let i = match p.nearest {
                        NearestMode::Floor => fl,
                        NearestMode::Ceil => xo.ceil(),
                        NearestMode::RoundPreferFloor => {
                            if frac == 0.5 {
                                fl
                            } else {
                                xo.round()
                            }
                        }
                        NearestMode::RoundPreferCeil => {
                            if frac == 0.5 {
                                fl + 1.0
                            } else {
                                xo.round()
                            }
                        }
                    };
                    vec![(clampi(i as i64), 1.0)]
                }
                ResizeMode::Linear => {
                    let fl = xo.floor();
                    let w = xo - fl;
                    let i0 = fl as i64;
                    vec![(clampi(i0), 1.0 - w), (clampi(i0 + 1), w)]
                }
                ResizeMode::Cubic => {
                    let fl = xo.floor();
                    let t = xo - fl;
                    let i0 = fl as i64;
                    let c = cubic_coeffs(t, p.cubic_coeff_a as f64);
                    let mut taps: Vec<(i64, f64)> =
                        (0..4).map(|k| (i0 - 1 + k as i64, c[k])).collect();
                    if p.exclude_outside {
                        taps.iter_mut().for_each(|(i, w)| {
                            if *i < 0 || *i > last {
                                *w = 0.0
                            }
                        });
                        let s: f64 = taps.iter().map(|t| t.1).sum();
                        if s != 0.0 {
                            taps.iter_mut().for_each(|t| t.1 /= s);
                        }
                    }
                    taps.into_iter().map(|(i, w)| (clampi(i), w)).collect()
                }
            })
        })
        .collect()
}

/// `Resize(x, roi, scales, sizes)`: exactly one of `scales`/`sizes` must be given (non-empty),
/// listing one value per entry of `axes` (default: every axis).
pub fn resize(
    x: &Tensor,
    roi: Option<&[f32]>,
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
    p: &ResizeParams,
) -> Result<Tensor> {
    let op = "Resize";
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let axes: Vec<usize> = match &p.axes {
        Some(a) => norm_axes(op, a, rank)?,
        None => (0..rank).collect(),
    };
    let scales = scales.filter(|s| !s.is_empty());
    let sizes = sizes.filter(|s| !s.is_empty());
    let mut out_shape = shape.clone();
    let mut axis_scale = vec![1.0f64; rank];
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != axes.len() {
                return err(
                    op,
                    format!(
                        "scales {s:?} must have one value per axis ({} axes)",
                        axes.len()
                    ),
                );
            }
            for (k, &a) in axes.iter().enumerate() {
                if s[k] <= 0.0 {
                    return err(op, format!("scale {} on axis {a} is not positive", s[k]));
                }
                axis_scale[a] = s[k] as f64;
                out_shape[a] = (shape[a] as f64 * s[k] as f64).floor() as usize;
            }
        }
        (None, Some(z)) => {
            if z.len() != axes.len() || z.iter().any(|&v| v < 0) {
                return err(
                    op,
                    format!("sizes {z:?} must be {} non-negative values", axes.len()),
                );
            }
            let ratios: Vec<f64> = axes
                .iter()
                .zip(z)
                .map(|(&a, &v)| v as f64 / shape[a] as f64)
                .collect();
            let common = match p.aspect {
                AspectPolicy::Stretch => None,
                AspectPolicy::NotLarger => {
                    Some(ratios.iter().copied().fold(f64::INFINITY, f64::min))
                }
                AspectPolicy::NotSmaller => {
                    Some(ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                }
            };
            for (k, &a) in axes.iter().enumerate() {
                match common {
                    None => {
                        axis_scale[a] = ratios[k];
                        out_shape[a] = z[k] as usize;
                    }
                    Some(c) => {
                        axis_scale[a] = c;
                        out_shape[a] = (shape[a] as f64 * c + 0.5).floor() as usize;
                    }
                }
            }
        }
        _ => return err(op, "exactly one of scales and sizes must be given"),
    }
    let scales32: Vec<f32> = axis_scale.iter().map(|&v| v as f32).collect();
    resize_explicit(x, roi, &scales32, &out_shape, p)
}

/// `Resize` with the per-axis scales (used by the coordinate transformation) and the output
/// shape already resolved, as the graph IR records them. `roi` (begins then ends, one pair
/// per axis) is read only by `tf_crop_and_resize`.
pub fn resize_explicit(
    x: &Tensor,
    roi: Option<&[f32]>,
    scales: &[f32],
    out_shape: &[usize],
    p: &ResizeParams,
) -> Result<Tensor> {
    let op = "Resize";
    let shape = x.shape().to_vec();
    let rank = shape.len();
    if scales.len() != rank || out_shape.len() != rank {
        return err(op, format!("scales {scales:?} and output shape {out_shape:?} need one entry per axis of {shape:?}"));
    }
    if let Some(bad) = scales.iter().find(|&&s| s <= 0.0 || !s.is_finite()) {
        return err(op, format!("scale {bad} is not a positive finite number"));
    }
    checked_numel(op, out_shape)?;
    let axis_scale: Vec<f64> = scales.iter().map(|&v| v as f64).collect();
    // `roi` may list only the resized axes.
    let axes: Vec<usize> = match &p.axes {
        Some(a) => norm_axes(op, a, rank)?,
        None => (0..rank).collect(),
    };
    let roi_of = |a: usize| -> Result<(f64, f64)> {
        if p.coord != CoordMode::TfCropAndResize {
            return Ok((0.0, 1.0));
        }
        let Some(r) = roi.filter(|r| !r.is_empty()) else {
            return err(op, "tf_crop_and_resize needs roi");
        };
        if r.len() == 2 * rank {
            Ok((r[a] as f64, r[rank + a] as f64))
        } else if r.len() == 2 * axes.len() {
            let k = axes.iter().position(|&b| b == a).unwrap_or(0);
            Ok((r[k] as f64, r[axes.len() + k] as f64))
        } else {
            err(op, format!("roi {r:?} must have 2 values per axis"))
        }
    };
    let mut cur = any_as_f32(x);
    let mut cur_shape = shape.clone();
    for a in 0..rank {
        if out_shape[a] == cur_shape[a]
            && axis_scale[a] == 1.0
            && p.coord != CoordMode::TfCropAndResize
        {
            continue;
        }
        if cur_shape[a] == 0 {
            return err(op, format!("cannot resize the empty axis {a} of {shape:?}"));
        }
        let taps = axis_taps(p, axis_scale[a], cur_shape[a], out_shape[a], roi_of(a)?);
        let outer: usize = cur_shape[..a].iter().product();
        let inner: usize = cur_shape[a + 1..].iter().product();
        let (li, lo) = (cur_shape[a], out_shape[a]);
        let src = contiguous(&cur).into_owned();
        let mut dst = vec![0f32; outer * lo * inner];
        for o in 0..outer {
            for (j, t) in taps.iter().enumerate() {
                let d = &mut dst[(o * lo + j) * inner..(o * lo + j + 1) * inner];
                match t {
                    None => d.iter_mut().for_each(|v| *v = p.extrapolation_value),
                    Some(t) => {
                        for (i, v) in d.iter_mut().enumerate() {
                            let mut acc = 0f64;
                            for &(k, w) in t {
                                acc += w * src[(o * li + k) * inner + i] as f64;
                            }
                            *v = acc as f32;
                        }
                    }
                }
            }
        }
        cur_shape[a] = lo;
        cur = shaped(op, &cur_shape, dst)?;
    }
    Ok(match x.dtype() {
        DType::F32 => Tensor::F32(cur),
        // Integer resize rounds interpolated values to nearest.
        DType::I64 | DType::I32 => cast(&Tensor::F32(cur.mapv(|v| v.round())), x.dtype()),
        dt => cast(&Tensor::F32(cur), dt),
    })
}
