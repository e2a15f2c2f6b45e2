//! Data-movement kernels that change shape but not values: `Reshape`, `Flatten`, `Transpose`,
//! `Concat`, `Split`, `Slice`, `Squeeze`, `Unsqueeze`, `Expand`, `Tile`, `Pad`, `Shape`,
//! `ConstantOfShape`, `Range`, `DepthToSpace`, `SpaceToDepth`.

use super::value::{
    broadcast_shapes, checked_numel, err, norm_axes, norm_axis, shaped, InterpError, Result,
};
use crate::map_same_kind;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, Axis, IxDyn, Slice};

fn reshaped<T: Clone>(op: &str, a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let v: Vec<T> = a.iter().cloned().collect();
    shaped(op, shape, v)
}

/// Resolves a `Reshape` target (`0` copies the input's extent unless `allowzero`, `-1` infers).
pub fn reshape_target(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let op = "Reshape";
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 => {
                if infer.is_some() {
                    return err(op, format!("shape {target:?} has more than one -1"));
                }
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => out.push(v),
                None => return err(op, format!("shape {target:?} copies axis {i} (0) but the input {input:?} has no such axis")),
            },
            d if d < 0 => return err(op, format!("shape {target:?} has a negative extent {d}")),
            d => out.push(d as usize),
        }
    }
    let known: usize = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| InterpError::new(op, format!("shape {target:?} has too many elements")))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return err(op, format!("cannot infer -1 in {target:?}: {total} elements of {input:?} do not divide by {known}"));
        }
        out[i] = total / known;
    } else if known != total {
        return err(
            op,
            format!("cannot reshape {input:?} ({total} elements) to {target:?} ({known} elements)"),
        );
    }
    Ok(out)
}

/// `Reshape`.
pub fn reshape(x: &Tensor, target: &[i64], allowzero: bool) -> Result<Tensor> {
    let shape = reshape_target(x.shape(), target, allowzero)?;
    Ok(map_same_kind!(x, a => reshaped("Reshape", a, &shape)))
}

/// `Flatten` to 2-D at `axis`.
pub fn flatten(x: &Tensor, axis: i64) -> Result<Tensor> {
    let s = x.shape();
    let r = s.len() as i64;
    if axis < -r || axis > r {
        return err(
            "Flatten",
            format!("axis {axis} is out of range for rank {r}"),
        );
    }
    let ax = if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    };
    let shape = [s[..ax].iter().product::<usize>(), s[ax..].iter().product()];
    Ok(map_same_kind!(x, a => reshaped("Flatten", a, &shape)))
}

/// `Transpose`; `perm = None` reverses the axes.
pub fn transpose(x: &Tensor, perm: Option<&[i64]>) -> Result<Tensor> {
    let rank = x.shape().len();
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => {
            if p.len() != rank {
                return err(
                    "Transpose",
                    format!("perm {p:?} has {} entries for rank {rank}", p.len()),
                );
            }
            norm_axes("Transpose", p, rank)?
        }
    };
    Ok(
        map_same_kind!(x, a => Ok::<_, InterpError>(a.view().permuted_axes(perm.clone()).as_standard_layout().into_owned())),
    )
}

fn concat_generic<T: Clone>(arrays: &[&ArrayD<T>], axis: usize) -> Result<ArrayD<T>> {
    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(axis), &views).map_err(|e| InterpError::new("Concat", e.to_string()))
}

/// `Concat` along `axis`.
pub fn concat(xs: &[&Tensor], axis: i64) -> Result<Tensor> {
    let op = "Concat";
    let Some(first) = xs.first() else {
        return err(op, "needs at least one input");
    };
    let rank = first.shape().len();
    let ax = norm_axis(op, axis, rank)?;
    for x in xs {
        if x.dtype() != first.dtype() {
            return err(
                op,
                format!("input types differ: {} and {}", first.dtype(), x.dtype()),
            );
        }
        let s = x.shape();
        if s.len() != rank
            || s.iter()
                .enumerate()
                .any(|(i, &d)| i != ax && d != first.shape()[i])
        {
            let shapes: Vec<&[usize]> = xs.iter().map(|t| t.shape()).collect();
            return err(op, format!("shapes {shapes:?} differ outside axis {axis}"));
        }
    }
    macro_rules! cat {
        ($variant:ident) => {{
            let arrs: Vec<_> = xs
                .iter()
                .map(|t| match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| InterpError::new(op, "mixed types"))?;
            Ok(Tensor::$variant(concat_generic(&arrs, ax)?))
        }};
    }
    match first {
        Tensor::F32(_) => cat!(F32),
        Tensor::F16(_) => cat!(F16),
        Tensor::BF16(_) => cat!(BF16),
        Tensor::I64(_) => cat!(I64),
        Tensor::I32(_) => cat!(I32),
        Tensor::Bool(_) => cat!(Bool),
    }
}

/// `Split` along `axis` by explicit `sizes`, or into `num_outputs` parts (the last may be smaller).
pub fn split(
    x: &Tensor,
    axis: i64,
    sizes: Option<&[i64]>,
    num_outputs: usize,
) -> Result<Vec<Tensor>> {
    let op = "Split";
    let rank = x.shape().len();
    let ax = norm_axis(op, axis, rank)?;
    let dim = x.shape()[ax];
    let sizes: Vec<usize> = match sizes {
        Some(s) => {
            if s.iter().any(|&v| v < 0)
                || s.iter().try_fold(0i64, |a, &v| a.checked_add(v)) != Some(dim as i64)
            {
                return err(
                    op,
                    format!("split sizes {s:?} do not add up to axis extent {dim}"),
                );
            }
            s.iter().map(|&v| v as usize).collect()
        }
        None => {
            if num_outputs == 0 {
                return err(op, "needs split sizes or a positive number of outputs");
            }
            let chunk = dim.div_ceil(num_outputs);
            let mut v = Vec::new();
            let mut left = dim;
            for _ in 0..num_outputs {
                let c = chunk.min(left);
                v.push(c);
                left -= c;
            }
            v
        }
    };
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0usize;
    for s in sizes {
        let end = start + s;
        out.push(map_same_kind!(x, a => Ok::<_, InterpError>(
            a.slice_axis(Axis(ax), Slice::from(start..end)).to_owned()
        )));
        start = end;
    }
    Ok(out)
}

/// `Slice` with ONNX clamping of starts and ends; `axes`/`steps` default to all / ones.
pub fn slice(
    x: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Tensor> {
    let op = "Slice";
    let shape = x.shape().to_vec();
    let rank = shape.len();
    if starts.len() != ends.len() {
        return err(
            op,
            format!("starts {starts:?} and ends {ends:?} differ in length"),
        );
    }
    let axes: Vec<usize> = match axes {
        Some(a) => {
            if a.len() != starts.len() {
                return err(
                    op,
                    format!("axes {a:?} and starts {starts:?} differ in length"),
                );
            }
            norm_axes(op, a, rank)?
        }
        None => {
            if starts.len() > rank {
                return err(op, format!("{} starts for rank {rank}", starts.len()));
            }
            (0..starts.len()).collect()
        }
    };
    let steps: Vec<i64> = match steps {
        Some(s) if s.len() == starts.len() => s.to_vec(),
        Some(s) => {
            return err(
                op,
                format!("steps {s:?} and starts {starts:?} differ in length"),
            )
        }
        None => vec![1; starts.len()],
    };
    let mut slices: Vec<Slice> = vec![Slice::from(..); rank];
    for i in 0..axes.len() {
        let d = shape[axes[i]] as i64;
        let step = steps[i];
        if step == 0 {
            return err(op, "step 0 is not allowed");
        }
        if d == 0 {
            slices[axes[i]] = Slice::new(0, Some(0), 1);
            continue;
        }
        // A step longer than the axis selects the same elements as one of the axis' length.
        let step = step.clamp(-d, d);
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (s, e) = (norm(starts[i]), norm(ends[i]));
        slices[axes[i]] = if step > 0 {
            let s = s.clamp(0, d);
            let e = e.clamp(0, d);
            if e <= s {
                Slice::new(0, Some(0), 1)
            } else {
                Slice::new(s as isize, Some(e as isize), step as isize)
            }
        } else {
            let s = s.clamp(0, d - 1);
            let e = e.clamp(-1, d - 1);
            if e >= s {
                Slice::new(0, Some(0), 1)
            } else {
                Slice::new((e + 1) as isize, Some((s + 1) as isize), step as isize)
            }
        };
    }
    Ok(map_same_kind!(x, a => Ok::<_, InterpError>(
        a.slice_each_axis(|ad| slices[ad.axis.index()]).to_owned()
    )))
}

/// `Squeeze`: drops the listed unit axes, or every unit axis when `axes` is `None`.
pub fn squeeze(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    let drop: Vec<usize> = match axes {
        Some(a) => {
            let v = norm_axes("Squeeze", a, shape.len())?;
            if let Some(&bad) = v.iter().find(|&&i| shape[i] != 1) {
                return err("Squeeze", format!("axis {bad} of shape {shape:?} is not 1"));
            }
            v
        }
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    let out: Vec<usize> = (0..shape.len())
        .filter(|i| !drop.contains(i))
        .map(|i| shape[i])
        .collect();
    Ok(map_same_kind!(x, a => reshaped("Squeeze", a, &out)))
}

/// `Unsqueeze`: inserts unit axes at the listed positions of the output.
pub fn unsqueeze(x: &Tensor, axes: &[i64]) -> Result<Tensor> {
    let shape = x.shape();
    let rank = shape.len() + axes.len();
    let ins = norm_axes("Unsqueeze", axes, rank)?;
    let mut out = Vec::with_capacity(rank);
    let mut it = shape.iter();
    for i in 0..rank {
        if ins.contains(&i) {
            out.push(1);
        } else {
            match it.next() {
                Some(&d) => out.push(d),
                None => {
                    return err(
                        "Unsqueeze",
                        format!("axes {axes:?} do not fit shape {shape:?}"),
                    )
                }
            }
        }
    }
    Ok(map_same_kind!(x, a => reshaped("Unsqueeze", a, &out)))
}

/// `Expand` to the broadcast of `x`'s shape and `shape`.
pub fn expand(x: &Tensor, shape: &[i64]) -> Result<Tensor> {
    if shape.iter().any(|&d| d < 0) {
        return err("Expand", format!("shape {shape:?} has a negative extent"));
    }
    let target: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let out = broadcast_shapes("Expand", &[x.shape(), &target])?;
    checked_numel("Expand", &out)?;
    Ok(
        map_same_kind!(x, a => a.broadcast(IxDyn(&out)).map(|v| v.to_owned()).ok_or_else(|| {
            InterpError::new("Expand", format!("shape {:?} cannot expand to {out:?}", a.shape()))
        })),
    )
}

/// `Tile` by per-axis repeat counts.
pub fn tile(x: &Tensor, repeats: &[i64]) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    if repeats.len() != shape.len() || repeats.iter().any(|&r| r < 0) {
        return err(
            "Tile",
            format!(
                "repeats {repeats:?} must be {} non-negative counts for shape {shape:?}",
                shape.len()
            ),
        );
    }
    let tiled: Vec<usize> = shape
        .iter()
        .zip(repeats)
        .map(|(&d, &r)| d.saturating_mul(r as usize))
        .collect();
    checked_numel("Tile", &tiled)?;
    let mut out = x.clone();
    for (ax, &r) in repeats.iter().enumerate() {
        if r == 1 {
            continue;
        }
        let parts: Vec<&Tensor> = std::iter::repeat_n(&out, r as usize).collect();
        out = if r == 0 {
            let mut s = out.shape().to_vec();
            s[ax] = 0;
            Tensor::zeros(out.dtype(), &s)
        } else {
            concat(&parts, ax as i64)?
        };
    }
    Ok(out)
}

/// `Pad` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl PadMode {
    pub fn parse(s: &str) -> Option<PadMode> {
        match s {
            "constant" => Some(PadMode::Constant),
            "reflect" => Some(PadMode::Reflect),
            "edge" => Some(PadMode::Edge),
            "wrap" => Some(PadMode::Wrap),
            _ => None,
        }
    }
}

fn source_index(mode: PadMode, o: i64, n: i64) -> Option<usize> {
    if (0..n).contains(&o) {
        return Some(o as usize);
    }
    if n == 0 {
        return None;
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(o.clamp(0, n - 1) as usize),
        PadMode::Wrap => Some(o.rem_euclid(n) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let period = 2 * (n - 1);
            let m = o.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
    }
}

/// `Pad`: `pads` holds all begins then all ends for `axes` (default: every axis); negative
/// pads crop. `value` fills constant padding (defaults to zero).
pub fn pad(
    x: &Tensor,
    pads: &[i64],
    mode: PadMode,
    value: Option<&Tensor>,
    axes: Option<&[i64]>,
) -> Result<Tensor> {
    let op = "Pad";
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let axes: Vec<usize> = match axes {
        Some(a) => norm_axes(op, a, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return err(
            op,
            format!(
                "pads {pads:?} must have {} values for {} axes",
                2 * axes.len(),
                axes.len()
            ),
        );
    }
    let mut begin = vec![0i64; rank];
    let mut end = vec![0i64; rank];
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[axes.len() + i];
    }
    let mut out_shape = Vec::with_capacity(rank);
    let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(rank);
    for d in 0..rank {
        let n = shape[d] as i64;
        let o = n.saturating_add(begin[d]).saturating_add(end[d]);
        if o < 0 {
            return err(
                op,
                format!("pads {pads:?} crop axis {d} of shape {shape:?} below zero"),
            );
        }
        if mode != PadMode::Constant && n == 0 && o > 0 {
            return err(op, format!("cannot {mode:?}-pad the empty axis {d}"));
        }
        out_shape.push(o as usize);
        checked_numel(op, &out_shape)?;
        maps.push(
            (0..o)
                .map(|i| source_index(mode, i - begin[d], n))
                .collect(),
        );
    }
    let fill = match value {
        Some(v) if v.len() == 1 => v.clone(),
        Some(v) if v.is_empty() => Tensor::zeros(x.dtype(), &[]),
        Some(v) => {
            return err(
                op,
                format!("constant_value must be a scalar, got shape {:?}", v.shape()),
            )
        }
        None => Tensor::zeros(x.dtype(), &[]),
    };
    let fill = super::elementwise::cast(&fill, x.dtype());
    fn go<T: Clone>(
        a: &ArrayD<T>,
        fill: T,
        out_shape: &[usize],
        maps: &[Vec<Option<usize>>],
    ) -> Result<ArrayD<T>> {
        let mut src = vec![0usize; out_shape.len()];
        Ok(ArrayD::from_shape_fn(IxDyn(out_shape), |idx| {
            for (d, m) in maps.iter().enumerate() {
                match m[idx[d]] {
                    Some(s) => src[d] = s,
                    None => return fill.clone(),
                }
            }
            a[IxDyn(&src)].clone()
        }))
    }
    Ok(match (x, &fill) {
        (Tensor::F32(a), Tensor::F32(f)) => Tensor::F32(go(
            a,
            f.iter().next().copied().unwrap_or(0.0),
            &out_shape,
            &maps,
        )?),
        (Tensor::F16(a), Tensor::F16(f)) => Tensor::F16(go(
            a,
            f.iter().next().copied().unwrap_or_default(),
            &out_shape,
            &maps,
        )?),
        (Tensor::BF16(a), Tensor::BF16(f)) => Tensor::BF16(go(
            a,
            f.iter().next().copied().unwrap_or_default(),
            &out_shape,
            &maps,
        )?),
        (Tensor::I64(a), Tensor::I64(f)) => Tensor::I64(go(
            a,
            f.iter().next().copied().unwrap_or(0),
            &out_shape,
            &maps,
        )?),
        (Tensor::I32(a), Tensor::I32(f)) => Tensor::I32(go(
            a,
            f.iter().next().copied().unwrap_or(0),
            &out_shape,
            &maps,
        )?),
        (Tensor::Bool(a), Tensor::Bool(f)) => Tensor::Bool(go(
            a,
            f.iter().next().copied().unwrap_or(false),
            &out_shape,
            &maps,
        )?),
        _ => return err(op, "constant_value type differs from the input"),
    })
}

/// `Shape` with the optional `start`/`end` (opset 15), clamped like ONNX.
pub fn shape_of(x: &Tensor, start: Option<i64>, end: Option<i64>) -> Tensor {
    let s = x.shape();
    let r = s.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let a = clamp(start.unwrap_or(0));
    let b = clamp(end.unwrap_or(r));
    let v: Vec<i64> = if a < b {
        s[a..b].iter().map(|&d| d as i64).collect()
    } else {
        vec![]
    };
    let n = v.len();
    Tensor::I64(
        ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[0]))),
    )
}

/// `Size`: the element count as an int64 scalar.
pub fn size_of(x: &Tensor) -> Tensor {
    Tensor::I64(ArrayD::from_elem(IxDyn(&[]), x.len() as i64))
}

/// `ConstantOfShape`: `value` (a one-element tensor, default float 0) repeated to `shape`.
pub fn constant_of_shape(shape: &[i64], value: Option<&Tensor>) -> Result<Tensor> {
    if shape.iter().any(|&d| d < 0) {
        return err(
            "ConstantOfShape",
            format!("shape {shape:?} has a negative extent"),
        );
    }
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    checked_numel("ConstantOfShape", &dims)?;
    let v = match value {
        Some(v) if v.len() == 1 => v.clone(),
        Some(v) => {
            return err(
                "ConstantOfShape",
                format!("value must hold one element, got shape {:?}", v.shape()),
            )
        }
        None => Tensor::zeros(DType::F32, &[1]),
    };
    Ok(map_same_kind!(&v, a => {
        let e = a.iter().next().cloned().ok_or_else(|| InterpError::new("ConstantOfShape", "empty value"));
        e.map(|e| ArrayD::from_elem(IxDyn(&dims), e))
    }))
}

/// `Range(start, limit, delta)` on scalars of one numeric type.
pub fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor> {
    let op = "Range";
    if start.dtype() != limit.dtype() || start.dtype() != delta.dtype() {
        return err(op, "start, limit and delta must have the same type");
    }
    if start.len() != 1 || limit.len() != 1 || delta.len() != 1 {
        return err(op, "start, limit and delta must be scalars");
    }
    match start.dtype() {
        DType::I64 | DType::I32 => {
            let (s, l, d) = (
                start.to_i64_vec()[0],
                limit.to_i64_vec()[0],
                delta.to_i64_vec()[0],
            );
            if d == 0 {
                return err(op, "delta is 0");
            }
            let n = ((l as f64 - s as f64) / d as f64).ceil().max(0.0) as usize;
            checked_numel(op, &[n])?;
            let v: Vec<i64> = (0..n)
                .map(|i| s.wrapping_add((i as i64).wrapping_mul(d)))
                .collect();
            let t = Tensor::I64(shaped(op, &[n], v)?);
            Ok(super::elementwise::cast(&t, start.dtype()))
        }
        DType::Bool => err(op, "bool is not a valid Range type"),
        dt => {
            let (s, l, d) = (
                start.to_f32_vec()[0],
                limit.to_f32_vec()[0],
                delta.to_f32_vec()[0],
            );
            if d == 0.0 {
                return err(op, "delta is 0");
            }
            let n = ((l - s) / d).ceil().max(0.0) as usize;
            checked_numel(op, &[n])?;
            let v: Vec<f32> = (0..n).map(|i| s + i as f32 * d).collect();
            super::value::float_out(op, dt, shaped(op, &[n], v)?)
        }
    }
}

/// `DepthToSpace` (modes `DCR` and `CRD`) and `SpaceToDepth` on `[N, C, H, W]`.
pub fn depth_to_space(x: &Tensor, block: usize, crd: bool) -> Result<Tensor> {
    let s = x.shape().to_vec();
    if s.len() != 4 || block == 0 || !s[1].is_multiple_of(block * block) {
        return err(
            "DepthToSpace",
            format!("needs [N, C, H, W] with C divisible by {block}^2, got {s:?}"),
        );
    }
    let (n, c, h, w) = (s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64);
    let b = block as i64;
    let cc = c / (b * b);
    let (tmp, perm): (Vec<i64>, Vec<i64>) = if crd {
        (vec![n, cc, b, b, h, w], vec![0, 1, 4, 2, 5, 3])
    } else {
        (vec![n, b, b, cc, h, w], vec![0, 3, 4, 1, 5, 2])
    };
    let t = reshape(x, &tmp, false)?;
    let t = transpose(&t, Some(&perm))?;
    reshape(&t, &[n, cc, h * b, w * b], false)
}

/// `SpaceToDepth` on `[N, C, H, W]`; `crd` orders output channels channel-major (mode `CRD`)
/// instead of block-major (`DCR`, the default).
pub fn space_to_depth(x: &Tensor, block: usize, crd: bool) -> Result<Tensor> {
    let s = x.shape().to_vec();
    if s.len() != 4 || block == 0 || !s[2].is_multiple_of(block) || !s[3].is_multiple_of(block) {
        return err(
            "SpaceToDepth",
            format!("needs [N, C, H, W] with H, W divisible by {block}, got {s:?}"),
        );
    }
    let (n, c, h, w) = (s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64);
    let b = block as i64;
    let t = reshape(x, &[n, c, h / b, b, w / b, b], false)?;
    let perm: [i64; 6] = if crd {
        [0, 1, 3, 5, 2, 4]
    } else {
        [0, 3, 5, 1, 2, 4]
    };
    let t = transpose(&t, Some(&perm))?;
    reshape(&t, &[n, c * b * b, h / b, w / b], false)
}
