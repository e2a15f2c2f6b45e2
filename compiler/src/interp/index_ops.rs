//! Indexed reads: `Gather`, `GatherElements`, `GatherND`, and the positional mask `Trilu`.
//! Negative indices count from the end; out-of-range indices are errors.

use super::value::{contiguous, err, int_values, norm_axis, shaped, Result};
use crate::map_same_kind;
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

fn fix_index(op: &str, i: i64, n: usize) -> Result<usize> {
    let j = if i < 0 { i + n as i64 } else { i };
    if j < 0 || j >= n as i64 {
        return err(
            op,
            format!("index {i} is out of range for an axis of extent {n}"),
        );
    }
    Ok(j as usize)
}

fn gather_generic<T: Clone>(
    a: &ArrayD<T>,
    idx: &[usize],
    idx_shape: &[usize],
    axis: usize,
) -> Result<ArrayD<T>> {
    let s = a.shape();
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    let n = s[axis];
    let data = contiguous(a);
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let base = (o * n + i) * inner;
            out.extend_from_slice(&data[base..base + inner]);
        }
    }
    let mut shape = s[..axis].to_vec();
    shape.extend_from_slice(idx_shape);
    shape.extend_from_slice(&s[axis + 1..]);
    shaped("Gather", &shape, out)
}

/// `Gather(data, indices)` along `axis`.
pub fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let op = "Gather";
    let rank = data.shape().len();
    let ax = norm_axis(op, axis, rank)?;
    let n = data.shape()[ax];
    let idx: Vec<usize> = int_values(op, "indices", indices)?
        .into_iter()
        .map(|i| fix_index(op, i, n))
        .collect::<Result<_>>()?;
    let ishape = indices.shape().to_vec();
    Ok(map_same_kind!(data, a => gather_generic(a, &idx, &ishape, ax)))
}

/// `GatherElements(data, indices)` along `axis`: output has the indices' shape.
pub fn gather_elements(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let op = "GatherElements";
    let ds = data.shape().to_vec();
    let is = indices.shape().to_vec();
    let ax = norm_axis(op, axis, ds.len())?;
    if is.len() != ds.len() {
        return err(
            op,
            format!(
                "indices rank {} differs from data rank {}",
                is.len(),
                ds.len()
            ),
        );
    }
    let idx = int_values(op, "indices", indices)?;
    let idx = shaped(op, &is, idx)?;
    let n = ds[ax];
    for (d, (&i, &dd)) in is.iter().zip(&ds).enumerate() {
        if d != ax && i > dd {
            return err(
                op,
                format!("indices shape {is:?} exceeds data shape {ds:?} on axis {d}"),
            );
        }
    }
    for &i in idx.iter() {
        fix_index(op, i, n)?;
    }
    fn go<T: Clone>(a: &ArrayD<T>, idx: &ArrayD<i64>, ax: usize, n: usize) -> Result<ArrayD<T>> {
        let mut src = vec![0usize; a.ndim()];
        Ok(ArrayD::from_shape_fn(idx.raw_dim(), |p| {
            for (d, s) in src.iter_mut().enumerate() {
                *s = p[d];
            }
            let i = idx[&p];
            src[ax] = if i < 0 {
                (i + n as i64) as usize
            } else {
                i as usize
            };
            a[IxDyn(&src)].clone()
        }))
    }
    Ok(map_same_kind!(data, a => go(a, &idx, ax, n)))
}

/// `GatherND(data, indices)` with `batch_dims` leading batch axes shared by both.
pub fn gather_nd(data: &Tensor, indices: &Tensor, batch_dims: usize) -> Result<Tensor> {
    let op = "GatherND";
    let ds = data.shape().to_vec();
    let is = indices.shape().to_vec();
    let b = batch_dims;
    if is.is_empty() || b >= is.len() || b > ds.len() || ds[..b] != is[..b] {
        return err(
            op,
            format!("indices {is:?} and data {ds:?} do not fit batch_dims {b}"),
        );
    }
    let k = is[is.len() - 1];
    if b + k > ds.len() {
        return err(
            op,
            format!(
                "index tuples of length {k} exceed data rank {} after {b} batch axes",
                ds.len()
            ),
        );
    }
    let idx = int_values(op, "indices", indices)?;
    let batches: usize = ds[..b].iter().product();
    let tuples_per_batch: usize = is[b..is.len() - 1].iter().product();
    let inner: usize = ds[b + k..].iter().product();
    let per_batch: usize = ds[b..].iter().product();
    let mut offsets = Vec::with_capacity(batches * tuples_per_batch);
    for bi in 0..batches {
        for t in 0..tuples_per_batch {
            let tup = &idx[(bi * tuples_per_batch + t) * k..(bi * tuples_per_batch + t + 1) * k];
            let mut off = 0usize;
            for (j, &i) in tup.iter().enumerate() {
                let n = ds[b + j];
                off = off * n + fix_index(op, i, n)?;
            }
            offsets.push(bi * per_batch + off * inner);
        }
    }
    let mut shape = is[..is.len() - 1].to_vec();
    shape.extend_from_slice(&ds[b + k..]);
    fn go<T: Clone>(
        a: &ArrayD<T>,
        offs: &[usize],
        inner: usize,
        shape: &[usize],
    ) -> Result<ArrayD<T>> {
        let d = contiguous(a);
        let mut out = Vec::with_capacity(offs.len() * inner);
        for &o in offs {
            out.extend_from_slice(&d[o..o + inner]);
        }
        shaped("GatherND", shape, out)
    }
    Ok(map_same_kind!(data, a => go(a, &offsets, inner, &shape)))
}

/// `Trilu`: keeps the upper (`upper`) or lower triangle of the last two axes, relative to
/// diagonal `k`, and zeroes the rest.
pub fn trilu(x: &Tensor, k: i64, upper: bool) -> Result<Tensor> {
    let op = "Trilu";
    let s = x.shape().to_vec();
    if s.len() < 2 {
        return err(op, format!("input must have rank >= 2, got {s:?}"));
    }
    let (rows, cols) = (s[s.len() - 2], s[s.len() - 1]);
    let keep = move |i: usize, j: usize| {
        let d = j as i64 - i as i64;
        if upper {
            d >= k
        } else {
            d <= k
        }
    };
    fn go<T: Clone + Default>(
        a: &ArrayD<T>,
        rows: usize,
        cols: usize,
        keep: impl Fn(usize, usize) -> bool,
    ) -> Result<ArrayD<T>> {
        let v = contiguous(a);
        let out: Vec<T> = v
            .iter()
            .enumerate()
            .map(|(p, t)| {
                let (i, j) = ((p / cols.max(1)) % rows.max(1), p % cols.max(1));
                if keep(i, j) {
                    t.clone()
                } else {
                    T::default()
                }
            })
            .collect();
        shaped("Trilu", a.shape(), out)
    }
    Ok(map_same_kind!(x, a => go(a, rows, cols, keep)))
}
