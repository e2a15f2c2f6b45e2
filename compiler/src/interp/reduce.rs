//! Reductions over a set of axes: `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`,
//! `ReduceProd`, `ReduceL1`, `ReduceL2`, `ReduceSumSquare`, `ReduceLogSumExp`, plus `ArgMax`/`ArgMin`
//! and the running sum `CumSum`.
//! Floats accumulate in f64 and round back to the input type.

use super::value::{err, float_out, float_view, norm_axes, norm_axis, shaped, Result};
use crate::tensor::Tensor;
use ndarray::ArrayD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSumExp,
    LogSum,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "ReduceSum",
            ReduceOp::Mean => "ReduceMean",
            ReduceOp::Max => "ReduceMax",
            ReduceOp::Min => "ReduceMin",
            ReduceOp::Prod => "ReduceProd",
            ReduceOp::L1 => "ReduceL1",
            ReduceOp::L2 => "ReduceL2",
            ReduceOp::SumSquare => "ReduceSumSquare",
            ReduceOp::LogSumExp => "ReduceLogSumExp",
            ReduceOp::LogSum => "ReduceLogSum",
        }
    }

    fn fold(self, v: &[f64]) -> f64 {
        match self {
            ReduceOp::Sum => v.iter().sum(),
            ReduceOp::Mean => v.iter().sum::<f64>() / v.len() as f64,
            ReduceOp::Max => {
                v.iter().copied().fold(
                    f64::NEG_INFINITY,
                    |m, x| if x > m || x.is_nan() { x } else { m },
                )
            }
            ReduceOp::Min => {
                v.iter().copied().fold(
                    f64::INFINITY,
                    |m, x| if x < m || x.is_nan() { x } else { m },
                )
            }
            ReduceOp::Prod => v.iter().product(),
            ReduceOp::L1 => v.iter().map(|x| x.abs()).sum(),
            ReduceOp::L2 => v.iter().map(|x| x * x).sum::<f64>().sqrt(),
            ReduceOp::SumSquare => v.iter().map(|x| x * x).sum(),
            ReduceOp::LogSum => v.iter().sum::<f64>().ln(),
            ReduceOp::LogSumExp => {
                let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if m.is_infinite() {
                    return v.iter().map(|x| x.exp()).sum::<f64>().ln();
                }
                m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            }
        }
    }

    fn fold_int(self, v: &[i64]) -> Option<i64> {
        Some(match self {
            ReduceOp::Sum => v.iter().fold(0i64, |a, &x| a.wrapping_add(x)),
            ReduceOp::Mean => {
                if v.is_empty() {
                    return None;
                }
                v.iter().fold(0i64, |a, &x| a.wrapping_add(x)) / v.len() as i64
            }
            ReduceOp::Max => *v.iter().max().unwrap_or(&i64::MIN),
            ReduceOp::Min => *v.iter().min().unwrap_or(&i64::MAX),
            ReduceOp::Prod => v.iter().fold(1i64, |a, &x| a.wrapping_mul(x)),
            ReduceOp::L1 => v
                .iter()
                .fold(0i64, |a, &x| a.wrapping_add(x.wrapping_abs())),
            ReduceOp::SumSquare => v
                .iter()
                .fold(0i64, |a, &x| a.wrapping_add(x.wrapping_mul(x))),
            ReduceOp::L2 | ReduceOp::LogSumExp | ReduceOp::LogSum => return None,
        })
    }
}

/// Parameters of every `Reduce*` op. `axes = None` reduces all axes unless
/// `noop_with_empty_axes` is set, in which case the input is returned unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReduceParams {
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

/// Splits `x` into rows of the reduced elements, in output order: the kept axes in order,
/// then the reduced ones. Returns (values in that order, number of rows, row length, out shape).
fn gather_rows<T: Clone>(
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
) -> (Vec<T>, usize, Vec<usize>) {
    let rank = a.ndim();
    let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let mut red: Vec<usize> = axes.to_vec();
    red.sort_unstable();
    let perm: Vec<usize> = kept.iter().chain(red.iter()).copied().collect();
    let view = a.view().permuted_axes(perm);
    let vals: Vec<T> = view.iter().cloned().collect();
    let row: usize = red.iter().map(|&d| a.shape()[d]).product();
    let out_shape: Vec<usize> = (0..rank)
        .filter_map(|d| {
            if axes.contains(&d) {
                keepdims.then_some(1)
            } else {
                Some(a.shape()[d])
            }
        })
        .collect();
    (vals, row, out_shape)
}

fn rows_of<T: Clone, R>(
    vals: &[T],
    row: usize,
    outer: usize,
    mut f: impl FnMut(&[T]) -> R,
) -> Vec<R> {
    if row == 0 {
        return (0..outer).map(|_| f(&[])).collect();
    }
    vals.chunks(row).map(f).collect()
}

/// Applies a `Reduce*` op.
pub fn reduce(op: ReduceOp, x: &Tensor, p: &ReduceParams) -> Result<Tensor> {
    let name = op.name();
    let rank = x.shape().len();
    let axes: Vec<usize> = match &p.axes {
        Some(a) if !a.is_empty() => norm_axes(name, a, rank)?,
        _ if p.noop_with_empty_axes => return Ok(x.clone()),
        _ => (0..rank).collect(),
    };
    let outer: usize = (0..rank)
        .filter(|d| !axes.contains(d))
        .map(|d| x.shape()[d])
        .product();
    match x {
        Tensor::I64(a) => {
            let (vals, row, shape) = gather_rows(a, &axes, p.keepdims);
            let out: Option<Vec<i64>> = rows_of(&vals, row, outer, |r| op.fold_int(r))
                .into_iter()
                .collect();
            match out {
                Some(v) => Ok(Tensor::I64(shaped(name, &shape, v)?)),
                None => err(
                    name,
                    "is not defined for int64 inputs (or reduces an empty set)",
                ),
            }
        }
        Tensor::I32(a) => {
            let (vals, row, shape) = gather_rows(a, &axes, p.keepdims);
            let vals: Vec<i64> = vals.into_iter().map(|v| v as i64).collect();
            let out: Option<Vec<i32>> =
                rows_of(&vals, row, outer, |r| op.fold_int(r).map(|v| v as i32))
                    .into_iter()
                    .collect();
            match out {
                Some(v) => Ok(Tensor::I32(shaped(name, &shape, v)?)),
                None => err(
                    name,
                    "is not defined for int32 inputs (or reduces an empty set)",
                ),
            }
        }
        Tensor::Bool(a) if matches!(op, ReduceOp::Max | ReduceOp::Min) => {
            let (vals, row, shape) = gather_rows(a, &axes, p.keepdims);
            let out = rows_of(&vals, row, outer, |r| match op {
                ReduceOp::Max => r.iter().any(|&b| b),
                _ => r.iter().all(|&b| b),
            });
            Ok(Tensor::Bool(shaped(name, &shape, out)?))
        }
        _ => {
            let a = float_view(name, x)?;
            let (vals, row, shape) = gather_rows(&a, &axes, p.keepdims);
            let mut buf = Vec::with_capacity(row);
            let out = rows_of(&vals, row, outer, |r| {
                buf.clear();
                buf.extend(r.iter().map(|&v| v as f64));
                op.fold(&buf) as f32
            });
            float_out(name, x.dtype(), shaped(name, &shape, out)?)
        }
    }
}

/// `ArgMax` / `ArgMin` along one axis; `select_last_index` breaks ties toward the end.
pub fn arg_reduce(
    x: &Tensor,
    axis: i64,
    keepdims: bool,
    select_last_index: bool,
    max: bool,
) -> Result<Tensor> {
    let name = if max { "ArgMax" } else { "ArgMin" };
    let rank = x.shape().len();
    let ax = norm_axis(name, axis, rank)?;
    if x.shape()[ax] == 0 {
        return err(
            name,
            format!("axis {axis} has length 0 in shape {:?}", x.shape()),
        );
    }
    let vals: Vec<f64> = match x {
        Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
        Tensor::I32(a) => a.iter().map(|&v| v as f64).collect(),
        _ => float_view(name, x)?.iter().map(|&v| v as f64).collect(),
    };
    let arr = shaped(name, x.shape(), vals)?;
    let (vals, row, shape) = gather_rows(&arr, &[ax], keepdims);
    let outer = vals.len() / row;
    let out = rows_of(&vals, row, outer, |r| {
        let mut best = 0usize;
        for (i, &v) in r.iter().enumerate() {
            let better = if max { v > r[best] } else { v < r[best] };
            if better || (select_last_index && v == r[best]) {
                best = i;
            }
        }
        best as i64
    });
    Ok(Tensor::I64(shaped(name, &shape, out)?))
}

/// `CumSum` along `axis`; `exclusive` leaves out the current element, `reverse` sums from the end.
pub fn cumsum(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let op = "CumSum";
    let shape = x.shape().to_vec();
    let ax = norm_axis(op, axis, shape.len())?;
    let outer: usize = shape[..ax].iter().product();
    let n = shape[ax];
    let inner: usize = shape[ax + 1..].iter().product();
    fn scan<T: Copy + Default>(
        v: &[T],
        outer: usize,
        n: usize,
        inner: usize,
        exclusive: bool,
        reverse: bool,
        add: impl Fn(T, T) -> T,
    ) -> Vec<T> {
        let mut out = vec![T::default(); v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = T::default();
                for step in 0..n {
                    let k = if reverse { n - 1 - step } else { step };
                    let idx = (o * n + k) * inner + i;
                    if exclusive {
                        out[idx] = acc;
                        acc = add(acc, v[idx]);
                    } else {
                        acc = add(acc, v[idx]);
                        out[idx] = acc;
                    }
                }
            }
        }
        out
    }
    match x {
        Tensor::I64(a) => {
            let v: Vec<i64> = a.iter().copied().collect();
            Ok(Tensor::I64(shaped(
                op,
                &shape,
                scan(&v, outer, n, inner, exclusive, reverse, i64::wrapping_add),
            )?))
        }
        Tensor::I32(a) => {
            let v: Vec<i32> = a.iter().copied().collect();
            Ok(Tensor::I32(shaped(
                op,
                &shape,
                scan(&v, outer, n, inner, exclusive, reverse, i32::wrapping_add),
            )?))
        }
        _ => {
            let a = float_view(op, x)?;
            let v: Vec<f64> = a.iter().map(|&f| f as f64).collect();
            let r = scan(&v, outer, n, inner, exclusive, reverse, |p, q| p + q);
            float_out(
                op,
                x.dtype(),
                shaped(op, &shape, r.into_iter().map(|f| f as f32).collect())?,
            )
        }
    }
}
