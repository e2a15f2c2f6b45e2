//! Tensor engine: LOAD_STATIONARY latches the stationary operand [K, M]; MATMUL streams the
//! moving operand [K, N] through it into PSUM, dst[M, N] = (acc ? dst : 0) + stationaryᵀ·moving,
//! run as one f32 GEMM (bf16/fp16 products are exact in f32; accumulation is fp32).
//!
//! Rows of the contraction whose products are all zero are left out of the GEMM (a one-hot
//! stationary, as a row gather builds, is mostly such rows): the GEMM kernel sums each output
//! in contraction order from +0.0, a sum that is never -0.0, so adding a ±0.0 product leaves it
//! bit for bit unchanged. A row qualifies when the stationary's row is all zeros and the moving
//! operand's is all finite (0 x inf would be NaN). At least one row is always kept, so the
//! GEMM's own epilogue (dst + sum, which turns a -0.0 dst into +0.0) runs as before.

use super::Effects;
use crate::error::Fault;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis};
use tahoma_isa::{Dtype, LoadStationary, Matmul};

/// The stationary operand held by the array.
#[derive(Clone, Debug)]
pub struct Stationary {
    pub dtype: Dtype,
    /// [K, M]: K partitions (contraction), M columns.
    pub data: Array2<f32>,
    /// Per row of `data`: every element is ±0.0.
    pub zero_rows: Vec<bool>,
}

/// Whether every value is ±0.0 (an OR of the magnitudes' bits, which vectorises).
fn all_zero(vals: &[f32]) -> bool {
    vals.iter().fold(0u32, |m, v| m | (v.to_bits() & 0x7fff_ffff)) == 0
}

/// Whether every value is finite (no all-ones exponent; branch-free, so it vectorises).
fn all_finite(vals: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    vals.iter()
        .fold(0u32, |m, v| m | u32::from(v.to_bits() & EXP == EXP))
        == 0
}

/// The contraction rows whose products can be nonzero (see the module doc), given the
/// row-major `[K, n]` moving values; never empty when `K > 0`.
fn live_rows(st: &Stationary, mv: &[f32], n: usize) -> Vec<usize> {
    let k = st.zero_rows.len();
    let mut live: Vec<usize> = (0..k)
        .filter(|&r| {
            let dead = st.zero_rows[r] && mv.get(r * n..(r + 1) * n).is_some_and(all_finite);
            !dead
        })
        .collect();
    if live.is_empty() && k > 0 {
        live.push(0);
    }
    live
}

/// acc = stᵀ·mv + beta·acc over the contraction rows `live` only (all rows: the plain GEMM).
fn gemm_rows(
    st: ArrayView2<f32>,
    mv: ArrayView2<f32>,
    live: &[usize],
    beta: f32,
    acc: &mut Array2<f32>,
) {
    if live.len() == st.nrows() {
        general_mat_mul(1.0, &st.t(), &mv, beta, acc);
    } else {
        let (st, mv) = (st.select(Axis(0), live), mv.select(Axis(0), live));
        general_mat_mul(1.0, &st.t(), &mv, beta, acc);
    }
}

/// The tensor engine's state between instructions.
#[derive(Clone, Debug, Default)]
pub struct TensorState {
    pub stationary: Option<Stationary>,
}

pub fn load_stationary(core: &mut super::Core, x: &LoadStationary) -> Result<Effects, Fault> {
    let vals = super::read(&core.mem, "src", &x.src)?;
    let (k, m) = (x.src.part_count as usize, x.src.free_elems() as usize);
    let zero_rows: Vec<bool> = vals.chunks(m.max(1)).map(all_zero).collect();
    let data = Array2::from_shape_vec((k, m), vals)
        .map_err(|e| Fault::new("E4007", "src", format!("cannot shape [{k}, {m}]: {e}")))?;
    if let Some(old) = core.tensor.stationary.take() {
        core.mem.recycle(old.data.into_raw_vec_and_offset().0);
    }
    core.tensor.stationary = Some(Stationary {
        dtype: x.src.dtype,
        data,
        zero_rows,
    });
    Ok(Effects::default())
}

pub fn matmul(core: &mut super::Core, x: &Matmul) -> Result<Effects, Fault> {
    let st = core.tensor.stationary.as_ref().ok_or_else(|| {
        Fault::new(
            "E4002",
            "moving",
            "no stationary operand is loaded; a LOAD_STATIONARY must come first",
        )
    })?;
    let (k, m) = st.data.dim();
    let kk = x.moving.part_count as usize;
    if kk != k {
        return Err(Fault::new(
            "E4003",
            "moving.part_count",
            format!("moving has K = {kk} partitions but the loaded stationary has K = {k}"),
        ));
    }
    if x.moving.dtype != st.dtype {
        return Err(Fault::new(
            "E4004",
            "moving.dtype",
            format!(
                "moving is {} but the loaded stationary is {}",
                x.moving.dtype.name(),
                st.dtype.name()
            ),
        ));
    }
    if x.dst.part_count as usize != m {
        return Err(Fault::new(
            "E4003",
            "dst.part_count",
            format!(
                "dst has {} partitions but the loaded stationary has M = {m} columns",
                x.dst.part_count
            ),
        ));
    }
    let n = x.moving.free_elems() as usize;
    if x.dst.free_elems() as usize != n {
        return Err(Fault::new(
            "E4007",
            "dst",
            format!(
                "dst has {} free elements, moving has N = {n}",
                x.dst.free_elems()
            ),
        ));
    }
    let mv = super::read(&core.mem, "moving", &x.moving)?;
    let live = live_rows(st, &mv, n);
    let mv = Array2::from_shape_vec((k, n), mv)
        .map_err(|e| Fault::new("E4007", "moving", e.to_string()))?;
    let acc = if x.accumulate {
        super::read(&core.mem, "dst", &x.dst)?
    } else {
        let mut z = core.mem.spare(m * n);
        z.resize(m * n, 0.0);
        z
    };
    let mut acc =
        Array2::from_shape_vec((m, n), acc).map_err(|e| Fault::new("E4007", "dst", e.to_string()))?;
    let beta = if x.accumulate { 1.0 } else { 0.0 };
    gemm_rows(st.data.view(), mv.view(), &live, beta, &mut acc);
    let dtype = st.dtype;
    let out = acc.into_raw_vec_and_offset().0;
    super::write(&mut core.mem, "dst", &x.dst, &out)?;
    core.mem.recycle(out);
    core.mem.recycle(mv.into_raw_vec_and_offset().0);
    Ok(Effects {
        macs: (k * m * n) as u64,
        hbm_bytes: 0,
        matmul_dtype: Some(dtype),
    })
}
