//! Shared plumbing of the reference kernels: the error type, conversions between [`Tensor`]
//! and f32 arrays (half types are computed in f32 and rounded back), axis normalisation and
//! ONNX multidirectional broadcasting.

use crate::tensor::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use std::borrow::Cow;
use std::fmt;

/// A kernel could not run: names the op and says what is wrong (shapes, dtypes, attributes).
#[derive(Clone, Debug, PartialEq)]
pub struct InterpError {
    /// The ONNX op type (`Conv`, `Reshape`, ...).
    pub op: String,
    /// The ONNX node name when the dispatcher knows it.
    pub node: Option<String>,
    pub message: String,
}

impl InterpError {
    pub fn new(op: &str, message: impl Into<String>) -> Self {
        InterpError {
            op: op.to_string(),
            node: None,
            message: message.into(),
        }
    }

    /// Attaches the node name (done by the graph dispatcher).
    pub fn with_node(mut self, node: &str) -> Self {
        if self.node.is_none() && !node.is_empty() {
            self.node = Some(node.to_string());
        }
        self
    }
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{} (node '{}'): {}", self.op, n, self.message),
            None => write!(f, "{}: {}", self.op, self.message),
        }
    }
}

impl std::error::Error for InterpError {}

pub type Result<T> = std::result::Result<T, InterpError>;

/// Shorthand for an `Err(InterpError)`.
pub fn err<T>(op: &str, message: impl Into<String>) -> Result<T> {
    Err(InterpError::new(op, message))
}

/// Builds a tensor of the same variant from a body generic over the element type.
/// `$body` must evaluate to `Result<ArrayD<T>>` where `T` is the element type of `$a`.
#[macro_export]
macro_rules! map_same_kind {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $crate::tensor::Tensor::F32($body?),
            $crate::tensor::Tensor::F16($a) => $crate::tensor::Tensor::F16($body?),
            $crate::tensor::Tensor::BF16($a) => $crate::tensor::Tensor::BF16($body?),
            $crate::tensor::Tensor::I64($a) => $crate::tensor::Tensor::I64($body?),
            $crate::tensor::Tensor::I32($a) => $crate::tensor::Tensor::I32($body?),
            $crate::tensor::Tensor::Bool($a) => $crate::tensor::Tensor::Bool($body?),
        }
    };
}

/// The values of a float tensor as f32 (borrowed for f32, converted for half types).
/// Integer and bool tensors are refused.
pub fn float_view<'a>(op: &str, t: &'a Tensor) -> Result<Cow<'a, ArrayD<f32>>> {
    match t {
        Tensor::F32(a) => Ok(Cow::Borrowed(a)),
        Tensor::F16(a) => Ok(Cow::Owned(a.mapv(|v| v.to_f32()))),
        Tensor::BF16(a) => Ok(Cow::Owned(a.mapv(|v| v.to_f32()))),
        other => err(op, format!("expects a float tensor, got {}", other.dtype())),
    }
}

/// Any numeric or bool tensor as f32 values (used where ONNX allows every type, e.g. scales).
pub fn any_as_f32(t: &Tensor) -> ArrayD<f32> {
    match t {
        Tensor::F32(a) => a.clone(),
        Tensor::F16(a) => a.mapv(|v| v.to_f32()),
        Tensor::BF16(a) => a.mapv(|v| v.to_f32()),
        Tensor::I64(a) => a.mapv(|v| v as f32),
        Tensor::I32(a) => a.mapv(|v| v as f32),
        Tensor::Bool(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
    }
}

/// Rounds f32 results back to `dtype` (which must be a float type; others are refused).
pub fn float_out(op: &str, dtype: DType, a: ArrayD<f32>) -> Result<Tensor> {
    match dtype {
        DType::F32 => Ok(Tensor::F32(a)),
        DType::F16 => Ok(Tensor::F16(a.mapv(f16::from_f32))),
        DType::BF16 => Ok(Tensor::BF16(a.mapv(bf16::from_f32))),
        other => err(op, format!("cannot produce a float result of type {other}")),
    }
}

/// Runs `f` on the f32 values of a float tensor and rounds the result back to its dtype.
pub fn with_float(
    op: &str,
    x: &Tensor,
    f: impl FnOnce(&ArrayD<f32>) -> Result<ArrayD<f32>>,
) -> Result<Tensor> {
    let v = float_view(op, x)?;
    let r = f(&v)?;
    float_out(op, x.dtype(), r)
}

/// Integer values of an index-like tensor (int64/int32), refusing other types.
pub fn int_values(op: &str, what: &str, t: &Tensor) -> Result<Vec<i64>> {
    match t {
        Tensor::I64(a) => Ok(a.iter().copied().collect()),
        Tensor::I32(a) => Ok(a.iter().map(|&v| v as i64).collect()),
        other => err(
            op,
            format!("{what} must be int64 or int32, got {}", other.dtype()),
        ),
    }
}

/// Normalises a possibly negative axis against `rank` (valid range `[-rank, rank-1]`).
pub fn norm_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return err(op, format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// Normalises a list of axes, refusing duplicates.
pub fn norm_axes(op: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(op, a, rank)?;
        if out.contains(&n) {
            return err(op, format!("axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// The ONNX multidirectional broadcast of several shapes.
pub fn broadcast_shapes(op: &str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return err(
                    op,
                    format!("shapes {shapes:?} cannot be broadcast together"),
                );
            }
        }
    }
    Ok(out)
}

/// A view of `a` broadcast to `shape` (which must come from [`broadcast_shapes`]).
pub fn broadcast_view<'a, T>(
    op: &str,
    a: &'a ArrayD<T>,
    shape: &[usize],
) -> Result<ArrayViewD<'a, T>> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        InterpError::new(
            op,
            format!("shape {:?} cannot be broadcast to {:?}", a.shape(), shape),
        )
    })
}

/// Applies `f` elementwise over two arrays after broadcasting them together.
pub fn zip2<A: Copy, B: Copy, C>(
    op: &str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    mut f: impl FnMut(A, B) -> C,
) -> Result<ArrayD<C>> {
    if a.shape() == b.shape() {
        if let (Some(sa), Some(sb)) = (a.as_slice(), b.as_slice()) {
            let v: Vec<C> = sa.iter().zip(sb).map(|(&x, &y)| f(x, y)).collect();
            return shaped(op, a.shape(), v);
        }
    }
    let shape = broadcast_shapes(op, &[a.shape(), b.shape()])?;
    let va = broadcast_view(op, a, &shape)?;
    let vb = broadcast_view(op, b, &shape)?;
    Ok(Zip::from(&va).and(&vb).map_collect(|&x, &y| f(x, y)))
}

/// Like [`zip2`] but `f` may fail (e.g. integer division by zero).
pub fn try_zip2<A: Copy, B: Copy, C: Clone + Default>(
    op: &str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> Option<C>,
    what: &str,
) -> Result<ArrayD<C>> {
    let mut failed = false;
    let r = zip2(op, a, b, |x, y| match f(x, y) {
        Some(v) => v,
        None => {
            failed = true;
            C::default()
        }
    });
    // `failed` is captured by the closure; check it after the closure is gone.
    let r = r?;
    if failed {
        return err(op, what.to_string());
    }
    Ok(r)
}

/// Builds an array from row-major values, reporting a count mismatch as an error.
pub fn shaped<T>(op: &str, shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .map_err(|_| InterpError::new(op, format!("{n} values do not fill shape {shape:?}")))
}

/// Row-major contiguous values of an array (cheap when it already is contiguous).
pub fn contiguous<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Largest element count a kernel will allocate for one result (2^34, 64 GiB of f32): shapes
/// beyond it come from malformed attributes, and refusing them keeps allocation from aborting.
pub const MAX_ELEMENTS: usize = 1 << 34;

/// Element count of `shape`, refusing overflow and counts above [`MAX_ELEMENTS`].
pub fn checked_numel(op: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            InterpError::new(
                op,
                format!("result shape {shape:?} is too large to materialise"),
            )
        })
}
