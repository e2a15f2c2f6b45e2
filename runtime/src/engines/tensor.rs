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
//!
//! The same argument lets a block-diagonal stationary (the compiler's partition slots and packed
//! groups) run as one small GEMM per diagonal block: each run of columns contracts only the rows
//! that can be nonzero in it, when the whole moving operand is finite ([`col_blocks`]).

use super::Effects;
use crate::access::Plan;
use crate::error::Fault;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Axis, ShapeBuilder};
use tahoma_isa::{Dtype, LoadStationary, Matmul, Mem};

/// The stationary operand held by the array.
#[derive(Clone, Debug)]
pub struct Stationary {
    pub dtype: Dtype,
    /// [K, M]: K partitions (contraction), M columns.
    pub data: Array2<f32>,
    /// Per row of `data`: every element is ±0.0.
    pub zero_rows: Vec<bool>,
    /// Runs of columns and the contraction rows that can be nonzero in each, when that is
    /// much less work than the whole `[K, M]` ([`col_blocks`]).
    pub blocks: Option<Vec<ColBlock>>,
}

/// Columns `cols` of a stationary whose nonzero entries all lie in rows `rows`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColBlock {
    pub cols: std::ops::Range<usize>,
    pub rows: std::ops::Range<usize>,
}

/// Most column runs worth one GEMM each (past it, the plain GEMM).
const MAX_COL_BLOCKS: usize = 16;

/// The runs of consecutive columns of row-major `[k, m]` values sharing the same span of
/// possibly-nonzero rows (an all-zero column gets row 0 alone, whose ±0.0 products sum to the
/// same +0.0), when they are at most [`MAX_COL_BLOCKS`] and contract at most three quarters of
/// the rows the whole GEMM would.
fn col_blocks(vals: &[f32], k: usize, m: usize) -> Option<Vec<ColBlock>> {
    if k == 0 || m == 0 {
        return None;
    }
    // Per column, the first and one past the last nonzero row, in one pass over the rows.
    let (mut lo, mut hi) = (vec![usize::MAX; m], vec![0usize; m]);
    for (r, row) in vals.chunks_exact(m).enumerate() {
        for (c, v) in row.iter().enumerate() {
            if v.to_bits() & 0x7fff_ffff != 0 {
                lo[c] = lo[c].min(r);
                hi[c] = r + 1;
            }
        }
    }
    let mut blocks: Vec<ColBlock> = Vec::new();
    for c in 0..m {
        let rows = if hi[c] > 0 { lo[c]..hi[c] } else { 0..1 };
        match blocks.last_mut() {
            Some(b) if b.rows == rows => b.cols.end = c + 1,
            _ => blocks.push(ColBlock {
                cols: c..c + 1,
                rows,
            }),
        }
        if blocks.len() > MAX_COL_BLOCKS {
            return None;
        }
    }
    let work: usize = blocks.iter().map(|b| b.rows.len() * b.cols.len()).sum();
    (blocks.len() > 1 && work * 4 <= k * m * 3).then_some(blocks)
}

/// Whether every value is ±0.0 (an OR of the magnitudes' bits, which vectorises).
fn all_zero(vals: &[f32]) -> bool {
    vals.iter()
        .fold(0u32, |m, v| m | (v.to_bits() & 0x7fff_ffff))
        == 0
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

/// acc = stᵀ·mv + beta·acc: per column block when the stationary has them and the moving
/// operand is finite, else over the live contraction rows.
fn gemm(
    st: &Stationary,
    mv: ArrayView2<f32>,
    live: &[usize],
    beta: f32,
    acc: &mut ArrayViewMut2<f32>,
) {
    match &st.blocks {
        Some(blocks) if mv.as_slice().is_some_and(all_finite) => {
            for b in blocks {
                let s = st.data.slice(s![b.rows.clone(), b.cols.clone()]);
                let mut a = acc.slice_mut(s![b.cols.clone(), ..]);
                general_mat_mul(1.0, &s.t(), &mv.slice(s![b.rows.clone(), ..]), beta, &mut a);
            }
        }
        _ => gemm_rows(st.data.view(), mv, live, beta, acc),
    }
}

/// acc = stᵀ·mv + beta·acc over the contraction rows `live` only (all rows: the plain GEMM).
fn gemm_rows(
    st: ArrayView2<f32>,
    mv: ArrayView2<f32>,
    live: &[usize],
    beta: f32,
    acc: &mut ArrayViewMut2<f32>,
) {
    if live.len() == st.nrows() {
        general_mat_mul(1.0, &st.t(), &mv, beta, acc);
    } else {
        let (st, mv) = (st.select(Axis(0), live), mv.select(Axis(0), live));
        general_mat_mul(1.0, &st.t(), &mv, beta, acc);
    }
}

/// MATMUL's dst (fp32 in PSUM, as the ISA requires) as an `[m, n]` matrix over PSUM's bytes,
/// when it is a block of rows and the bytes are f32-aligned on a little-endian host: the GEMM
/// then reads and writes the accumulator in place, the same values in the same order as through
/// a copy (`beta` 0 ignores the old contents either way).
fn psum_block<'a>(
    psum: &'a mut [u8],
    plan: &Plan,
    m: usize,
    n: usize,
) -> Option<ArrayViewMut2<'a, f32>> {
    if !cfg!(target_endian = "little") || plan.mem != Mem::Psum || plan.dtype != Dtype::Fp32 {
        return None;
    }
    let (base, rows, stride, cols) = plan.block(m, n)?;
    let word = std::mem::size_of::<f32>();
    if !(base as usize).is_multiple_of(word)
        || stride <= 0
        || !(stride as usize).is_multiple_of(word)
    {
        return None;
    }
    let words: &mut [f32] = bytemuck::try_cast_slice_mut(psum).ok()?;
    let tail = words.get_mut(base as usize / word..)?;
    ArrayViewMut2::from_shape((rows, cols).strides((stride as usize / word, 1)), tail).ok()
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
    let blocks = col_blocks(&vals, k, m);
    let data = Array2::from_shape_vec((k, m), vals)
        .map_err(|e| Fault::new("E4007", "src", format!("cannot shape [{k}, {m}]: {e}")))?;
    if let Some(old) = core.tensor.stationary.take() {
        core.mem.recycle(old.data.into_raw_vec_and_offset().0);
    }
    core.tensor.stationary = Some(Stationary {
        dtype: x.src.dtype,
        data,
        zero_rows,
        blocks,
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
    let beta = if x.accumulate { 1.0 } else { 0.0 };
    let dtype = st.dtype;
    let plan = Plan::of_ap(&x.dst).map_err(|f| f.within("dst"))?;
    if let Some(mut acc) = psum_block(&mut core.mem.psum.bytes, &plan, m, n) {
        gemm(st, mv.view(), &live, beta, &mut acc);
    } else {
        let acc = if x.accumulate {
            super::read(&core.mem, "dst", &x.dst)?
        } else {
            let mut z = core.mem.spare(m * n);
            z.resize(m * n, 0.0);
            z
        };
        let mut acc = Array2::from_shape_vec((m, n), acc)
            .map_err(|e| Fault::new("E4007", "dst", e.to_string()))?;
        gemm(st, mv.view(), &live, beta, &mut acc.view_mut());
        let out = acc.into_raw_vec_and_offset().0;
        super::write(&mut core.mem, "dst", &x.dst, &out)?;
        core.mem.recycle(out);
    }
    core.mem.recycle(mv.into_raw_vec_and_offset().0);
    Ok(Effects {
        macs: (k * m * n) as u64,
        hbm_bytes: 0,
        matmul_dtype: Some(dtype),
    })
}

#[cfg(test)]
mod tests {
    //! Skipping all-zero contraction rows against the full GEMM, bit for bit.
    use super::*;

    fn bits(a: &Array2<f32>) -> Vec<u32> {
        a.iter().map(|v| v.to_bits()).collect()
    }

    /// A one-hot-like stationary [k, m] (some rows all zero, some -0.0), bf16-exact values.
    fn case(k: usize, m: usize, n: usize) -> (Stationary, Array2<f32>) {
        let st = Array2::from_shape_fn((k, m), |(r, c)| match r % 4 {
            0 => f32::from(u8::try_from((r * 7 + c) % 5).unwrap_or(0)) - 2.0,
            1 => -0.0,
            _ => 0.0,
        });
        let mv = Array2::from_shape_fn((k, n), |(r, c)| {
            ((r * 31 + c * 17) % 23) as f32 * 0.125 - 1.5
        });
        let zero_rows = st
            .rows()
            .into_iter()
            .map(|r| all_zero(r.as_slice().unwrap_or(&[1.0])))
            .collect();
        (
            Stationary {
                dtype: Dtype::Bf16,
                data: st,
                zero_rows,
                blocks: None,
            },
            mv,
        )
    }

    fn both(
        st: &Stationary,
        mv: &Array2<f32>,
        beta: f32,
        acc0: &Array2<f32>,
    ) -> (Vec<u32>, Vec<u32>, usize) {
        let n = mv.ncols();
        let live = live_rows(st, mv.as_slice().unwrap_or(&[]), n);
        let (mut skip, mut full) = (acc0.clone(), acc0.clone());
        gemm_rows(st.data.view(), mv.view(), &live, beta, &mut skip.view_mut());
        general_mat_mul(1.0, &st.data.t(), mv, beta, &mut full);
        (bits(&skip), bits(&full), live.len())
    }

    #[test]
    fn skipping_zero_rows_matches_the_full_gemm() {
        let (st, mv) = case(64, 24, 40);
        // -0.0, NaN and +-inf in the accumulated destination.
        let acc0 = Array2::from_shape_fn((24, 40), |(i, j)| match (i + j) % 6 {
            0 => -0.0,
            1 => f32::NAN,
            2 => f32::INFINITY,
            _ => (i as f32 - j as f32) * 0.5,
        });
        for beta in [0.0, 1.0] {
            let (skip, full, live) = both(&st, &mv, beta, &acc0);
            assert_eq!(live, 16, "only the nonzero stationary rows stay");
            assert_eq!(skip, full, "beta {beta}");
        }
    }

    /// MATMUL accumulating in place in PSUM against the copy path (read dst, GEMM, write back),
    /// bit for bit, with -0.0, NaN and inf in the accumulator.
    #[test]
    fn in_place_accumulation_matches_the_copy_path() {
        use tahoma_isa::{Ap, Header};
        let (k, m, n) = (16u64, 8u64, 12u64);
        let mut core = super::super::Core::new();
        let mut x = 0x2545_f491u32;
        for b in core.mem.sbuf.bytes.iter_mut().take(1 << 16) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = (x as u8) & 0x3f; // bf16 values of modest exponent
        }
        let st = Ap::new(Mem::Sbuf, Dtype::Bf16, 0, k, 0, &[(m, 1)]);
        let mv = Ap::new(Mem::Sbuf, Dtype::Bf16, 0, k, 256, &[(n, 1)]);
        let dst = Ap::new(Mem::Psum, Dtype::Fp32, 0, m, 64, &[(n, 1)]);
        let acc0: Vec<f32> = (0..m * n)
            .map(|i| match i % 5 {
                0 => -0.0,
                1 => f32::NAN,
                2 => f32::INFINITY,
                _ => i as f32 * 0.25 - 3.0,
            })
            .collect();
        core.mem.write_ap(&dst, &acc0).expect("dst in range");
        let plan = Plan::of_ap(&dst).expect("dst in range");
        assert!(
            plan.block(m as usize, n as usize).is_some(),
            "takes the in-place path"
        );
        let sync = Header::default();
        load_stationary(&mut core, &LoadStationary { sync, src: st }).expect("stationary");
        let expected = {
            let s = core.tensor.stationary.as_ref().expect("loaded");
            let mvv = core.mem.read_ap(&mv).expect("moving");
            let mvv = Array2::from_shape_vec((k as usize, n as usize), mvv).expect("shape");
            let mut acc = Array2::from_shape_vec((m as usize, n as usize), acc0).expect("shape");
            let all: Vec<usize> = (0..k as usize).collect();
            gemm_rows(s.data.view(), mvv.view(), &all, 1.0, &mut acc.view_mut());
            bits(&acc)
        };
        let mm = Matmul {
            sync,
            moving: mv,
            dst,
            accumulate: true,
        };
        matmul(&mut core, &mm).expect("matmul");
        let got = core.mem.read_ap(&dst).expect("dst");
        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, expected);
    }

    /// A block-diagonal stationary (two slots of 40 rows x 48 columns, the last 8 columns of
    /// each slot all zero) run per column block against the full GEMM, bit for bit, with -0.0,
    /// NaN and inf in the accumulator; a non-finite moving value takes the full GEMM.
    #[test]
    fn column_blocks_match_the_full_gemm() {
        let (k, m, n) = (128usize, 128usize, 24usize);
        let st = Array2::from_shape_fn((k, m), |(r, c)| {
            let (slot_r, slot_c) = (r / 64, c / 64);
            if slot_r == slot_c && r % 64 < 40 && c % 64 < 48 {
                ((r * 13 + c * 7) % 11) as f32 * 0.25 - 1.375
            } else if (r + c) % 3 == 0 {
                -0.0
            } else {
                0.0
            }
        });
        let vals: Vec<f32> = st.iter().copied().collect();
        let blocks = col_blocks(&vals, k, m).expect("block-diagonal");
        assert_eq!(
            blocks,
            vec![
                ColBlock {
                    cols: 0..48,
                    rows: 0..40
                },
                ColBlock {
                    cols: 48..64,
                    rows: 0..1
                },
                ColBlock {
                    cols: 64..112,
                    rows: 64..104
                },
                ColBlock {
                    cols: 112..128,
                    rows: 0..1
                },
            ]
        );
        let zero_rows = st
            .rows()
            .into_iter()
            .map(|r| all_zero(r.as_slice().unwrap_or(&[1.0])))
            .collect();
        let st = Stationary {
            dtype: Dtype::Bf16,
            data: st,
            zero_rows,
            blocks: Some(blocks),
        };
        let mut mv = Array2::from_shape_fn((k, n), |(r, c)| {
            ((r * 31 + c * 17) % 23) as f32 * 0.125 - 1.5
        });
        let acc0 = Array2::from_shape_fn((m, n), |(i, j)| match (i + j) % 6 {
            0 => -0.0,
            1 => f32::NAN,
            2 => f32::INFINITY,
            _ => (i as f32 - j as f32) * 0.5,
        });
        for inf in [false, true] {
            if inf {
                mv[[100, 3]] = f32::INFINITY; // in a zero row of slot 0's columns: NaN there
            }
            for beta in [0.0, 1.0] {
                let (mut blocked, mut full) = (acc0.clone(), acc0.clone());
                let all: Vec<usize> = (0..k).collect();
                gemm(&st, mv.view(), &all, beta, &mut blocked.view_mut());
                general_mat_mul(1.0, &st.data.t(), &mv, beta, &mut full);
                assert_eq!(bits(&blocked), bits(&full), "beta {beta}, inf {inf}");
            }
        }
    }

    #[test]
    fn a_non_finite_moving_row_is_kept() {
        let (st, mut mv) = case(16, 8, 8);
        mv[[1, 3]] = f32::INFINITY; // row 1 of the stationary is -0.0: 0 x inf is NaN
        mv[[2, 0]] = f32::NAN;
        let acc0 = Array2::zeros((8, 8));
        let (skip, full, live) = both(&st, &mv, 0.0, &acc0);
        assert_eq!(live, 4 + 2);
        assert_eq!(skip, full);
        assert!(f32::from_bits(skip[3]).is_nan());
    }

    #[test]
    fn an_all_zero_stationary_keeps_one_row() {
        let st = Stationary {
            dtype: Dtype::Bf16,
            data: Array2::zeros((8, 4)),
            zero_rows: vec![true; 8],
            blocks: None,
        };
        let mv = Array2::from_elem((8, 4), 2.0f32);
        let acc0 = Array2::from_elem((4, 4), -0.0f32);
        let (skip, full, live) = both(&st, &mv, 1.0, &acc0);
        assert_eq!(live, 1);
        assert_eq!(skip, full);
        assert_eq!(
            skip[0],
            0.0f32.to_bits(),
            "-0.0 + 0 is +0.0, as the full GEMM gives"
        );
    }
}
