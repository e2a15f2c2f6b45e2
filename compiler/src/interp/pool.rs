//! Pooling: `MaxPool` (with optional indices), `AveragePool`, `LpPool`, `GlobalAveragePool`,
//! `GlobalMaxPool`, `GlobalLpPool`, for 1-D, 2-D and 3-D windows.

use super::value::{contiguous, err, float_out, float_view, shaped, Result};
use super::window::{geometry, AutoPad, G3};
use crate::tensor::Tensor;

/// Attributes shared by the windowed pools.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolParams {
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
    /// AveragePool: divide by the window size including padding.
    pub count_include_pad: bool,
    /// MaxPool indices: 0 row-major, 1 column-major over the spatial axes.
    pub storage_order: i64,
    /// LpPool: the norm's exponent.
    pub p: f32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
    Lp,
}

fn prepare(op: &str, x: &Tensor, p: &PoolParams) -> Result<(G3, Vec<usize>)> {
    let xs = x.shape();
    if xs.len() < 3 || xs.len() > 5 {
        return err(
            op,
            format!("input must be [N, C, D1..Dn] with 1 <= n <= 3, got {xs:?}"),
        );
    }
    if p.kernel_shape.len() != xs.len() - 2 {
        return err(
            op,
            format!(
                "kernel_shape {:?} must have {} values for input {xs:?}",
                p.kernel_shape,
                xs.len() - 2
            ),
        );
    }
    let geo = geometry(
        op,
        &xs[2..],
        &p.kernel_shape,
        &p.strides,
        &p.dilations,
        &p.pads,
        p.auto_pad,
        p.ceil_mode,
    )?;
    let g = G3::from_geometry(op, &geo)?;
    let mut shape = xs[..2].to_vec();
    shape.extend(&geo.out);
    super::value::checked_numel(op, &shape)?;
    Ok((g, shape))
}

fn pool(op: &str, kind: Kind, x: &Tensor, p: &PoolParams) -> Result<(Tensor, Vec<i64>)> {
    let (g, shape) = prepare(op, x, p)?;
    let xv = float_view(op, x)?;
    let xs = contiguous(&xv);
    let planes = shape[0] * shape[1];
    let (isz, osz) = (g.in_size(), g.out_size());
    let [id, ih, iw] = g.input;
    let mut out = Vec::with_capacity(planes * osz);
    let mut idx = Vec::new();
    let padded_hi = |ax: usize| g.input[ax] as isize + g.pads_end[ax];
    for plane in 0..planes {
        let src = &xs[plane * isz..(plane + 1) * isz];
        for oz in 0..g.out[0] {
            for oy in 0..g.out[1] {
                for ox in 0..g.out[2] {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_i: i64 = -1;
                    let mut sum = 0f64;
                    let mut count = 0usize;
                    let mut padded_count = 0usize;
                    for kz in 0..g.kernel[0] {
                        let iz = g.coord(0, oz, kz);
                        for ky in 0..g.kernel[1] {
                            let iy = g.coord(1, oy, ky);
                            for kx in 0..g.kernel[2] {
                                let ix = g.coord(2, ox, kx);
                                if iz < padded_hi(0) && iy < padded_hi(1) && ix < padded_hi(2) {
                                    padded_count += 1;
                                }
                                let inside = iz >= 0
                                    && (iz as usize) < id
                                    && iy >= 0
                                    && (iy as usize) < ih
                                    && ix >= 0
                                    && (ix as usize) < iw;
                                if !inside {
                                    continue;
                                }
                                let (z, y, xx) = (iz as usize, iy as usize, ix as usize);
                                let v = src[(z * ih + y) * iw + xx];
                                count += 1;
                                match kind {
                                    Kind::Max => {
                                        if v > best || best_i < 0 || v.is_nan() {
                                            best = v;
                                            let local = if p.storage_order == 1 {
                                                (xx * ih + y) * id + z
                                            } else {
                                                (z * ih + y) * iw + xx
                                            };
                                            best_i = (plane * isz + local) as i64;
                                        }
                                    }
                                    Kind::Avg => sum += v as f64,
                                    Kind::Lp => sum += (v.abs() as f64).powf(p.p as f64),
                                }
                            }
                        }
                    }
                    out.push(match kind {
                        Kind::Max => best,
                        Kind::Avg => {
                            let d = if p.count_include_pad {
                                padded_count
                            } else {
                                count
                            };
                            if d == 0 {
                                f32::NAN
                            } else {
                                (sum / d as f64) as f32
                            }
                        }
                        Kind::Lp => sum.powf(1.0 / p.p as f64) as f32,
                    });
                    if kind == Kind::Max {
                        idx.push(best_i);
                    }
                }
            }
        }
    }
    Ok((float_out(op, x.dtype(), shaped(op, &shape, out)?)?, idx))
}

/// `MaxPool`; returns the values and the flat argmax indices (the optional second output).
pub fn max_pool(x: &Tensor, p: &PoolParams) -> Result<(Tensor, Tensor)> {
    let (y, idx) = pool("MaxPool", Kind::Max, x, p)?;
    let shape = y.shape().to_vec();
    Ok((y, Tensor::I64(shaped("MaxPool", &shape, idx)?)))
}

/// `AveragePool`.
pub fn average_pool(x: &Tensor, p: &PoolParams) -> Result<Tensor> {
    Ok(pool("AveragePool", Kind::Avg, x, p)?.0)
}

/// `LpPool` with exponent `p.p`.
pub fn lp_pool(x: &Tensor, p: &PoolParams) -> Result<Tensor> {
    Ok(pool("LpPool", Kind::Lp, x, p)?.0)
}

/// The global pools: reduce all spatial axes, keeping them as ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GlobalPool {
    Average,
    Max,
    Lp(f32),
}

/// `GlobalAveragePool`, `GlobalMaxPool`, `GlobalLpPool`.
pub fn global_pool(kind: GlobalPool, x: &Tensor) -> Result<Tensor> {
    let op = match kind {
        GlobalPool::Average => "GlobalAveragePool",
        GlobalPool::Max => "GlobalMaxPool",
        GlobalPool::Lp(_) => "GlobalLpPool",
    };
    let xs = x.shape().to_vec();
    if xs.len() < 2 {
        return err(op, format!("input must be [N, C, ...], got {xs:?}"));
    }
    let inner: usize = xs[2..].iter().product();
    if inner == 0 {
        return err(op, format!("input {xs:?} has an empty spatial extent"));
    }
    let xv = float_view(op, x)?;
    let s = contiguous(&xv);
    let out: Vec<f32> = s
        .chunks(inner)
        .map(|r| match kind {
            GlobalPool::Average => (r.iter().map(|&v| v as f64).sum::<f64>() / inner as f64) as f32,
            GlobalPool::Max => r.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            GlobalPool::Lp(p) => r
                .iter()
                .map(|&v| (v.abs() as f64).powf(p as f64))
                .sum::<f64>()
                .powf(1.0 / p as f64) as f32,
        })
        .collect();
    let mut shape = xs[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, xs.len() - 2));
    float_out(op, x.dtype(), shaped(op, &shape, out)?)
}
