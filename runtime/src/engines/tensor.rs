//! Tensor engine: LOAD_STATIONARY latches the stationary operand [K, M]; MATMUL streams the
//! moving operand [K, N] through it into PSUM, dst[M, N] = (acc ? dst : 0) + stationaryᵀ·moving,
//! run as one f32 GEMM (bf16/fp16 products are exact in f32; accumulation is fp32).

use super::Effects;
use crate::error::Fault;
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use tahoma_isa::{Dtype, LoadStationary, Matmul};

/// The stationary operand held by the array.
#[derive(Clone, Debug)]
pub struct Stationary {
    pub dtype: Dtype,
    /// [K, M]: K partitions (contraction), M columns.
    pub data: Array2<f32>,
}

/// The tensor engine's state between instructions.
#[derive(Clone, Debug, Default)]
pub struct TensorState {
    pub stationary: Option<Stationary>,
}

pub fn load_stationary(core: &mut super::Core, x: &LoadStationary) -> Result<Effects, Fault> {
    let vals = super::read(&core.mem, "src", &x.src)?;
    let (k, m) = (x.src.part_count as usize, x.src.free_elems() as usize);
    let data = Array2::from_shape_vec((k, m), vals)
        .map_err(|e| Fault::new("E4007", "src", format!("cannot shape [{k}, {m}]: {e}")))?;
    core.tensor.stationary = Some(Stationary {
        dtype: x.src.dtype,
        data,
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
    let mv = Array2::from_shape_vec((k, n), mv)
        .map_err(|e| Fault::new("E4007", "moving", e.to_string()))?;
    let mut acc = if x.accumulate {
        let d = super::read(&core.mem, "dst", &x.dst)?;
        Array2::from_shape_vec((m, n), d).map_err(|e| Fault::new("E4007", "dst", e.to_string()))?
    } else {
        Array2::zeros((m, n))
    };
    let beta = if x.accumulate { 1.0 } else { 0.0 };
    general_mat_mul(1.0, &st.data.t(), &mv, beta, &mut acc);
    let dtype = st.dtype;
    let out = acc.into_raw_vec_and_offset().0;
    super::write(&mut core.mem, "dst", &x.dst, &out)?;
    Ok(Effects {
        macs: (k * m * n) as u64,
        hbm_bytes: 0,
        matmul_dtype: Some(dtype),
    })
}
