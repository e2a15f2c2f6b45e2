//! Static type and shape inference for every op in canonical form. The importer uses it to
//! type each node it creates; the verifier re-runs it to check stored types.
//!
//! Errors are plain messages naming the op, the operand shapes and the offending attribute;
//! callers wrap them in a diagnostic with the node name.

use super::{Attrs, FusedAct, Op, TensorType};
use crate::tensor::DType;
use std::fmt;

/// What kind of rule an inference failure broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferErrorKind {
    /// Operand element types.
    Type,
    /// Operand shapes or counts.
    Shape,
    /// A missing or invalid attribute.
    Attr,
}

/// Why an op cannot be applied to the given operands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferError {
    pub kind: InferErrorKind,
    pub message: String,
}

impl InferError {
    pub fn ty(message: String) -> Self {
        InferError {
            kind: InferErrorKind::Type,
            message,
        }
    }

    pub fn attr(message: String) -> Self {
        InferError {
            kind: InferErrorKind::Attr,
            message,
        }
    }
}

impl From<String> for InferError {
    fn from(message: String) -> Self {
        InferError {
            kind: InferErrorKind::Shape,
            message,
        }
    }
}

impl From<&str> for InferError {
    fn from(message: &str) -> Self {
        InferError::from(message.to_string())
    }
}

impl fmt::Display for InferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Output types of `op` applied to operands of types `ins` with attributes `attrs`.
pub fn infer(op: Op, attrs: &Attrs, ins: &[TensorType]) -> Result<Vec<TensorType>, InferError> {
    use Op::*;
    let one = |t: TensorType| Ok(vec![t]);
    match op {
        _ if op.is_unary_elementwise() => {
            arity(op, ins, 1, 1)?;
            let t = &ins[0];
            let needs_float = !matches!(op, Neg | Abs | Relu | Sign | Identity | Clip | Shrink);
            if needs_float && !t.dtype.is_float() {
                return Err(InferError::ty(format!(
                    "{op} needs a float operand, got {t}"
                )));
            }
            if t.dtype == DType::Bool && op != Identity {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            if op == Clip {
                attrs.opt_float("min").map_err(InferError::attr)?;
                attrs.opt_float("max").map_err(InferError::attr)?;
            }
            let needed: &[&str] = match op {
                LeakyRelu | Elu | Celu | ThresholdedRelu | Swish => &["alpha"],
                HardSigmoid => &["alpha", "beta"],
                Selu => &["alpha", "gamma"],
                Shrink => &["bias", "lambd"],
                _ => &[],
            };
            for a in needed {
                attrs.float(a).map_err(InferError::attr)?;
            }
            one(t.clone())
        }
        PRelu => {
            arity(op, ins, 2, 2)?;
            same_dtype(op, ins)?;
            if ins[0].dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            if broadcast_shapes(&ins[1].shape, &ins[0].shape).as_deref() != Some(&ins[0].shape[..])
            {
                return Err(InferError::from(format!(
                    "PRelu slope {} does not broadcast to X {}",
                    ins[1], ins[0]
                )));
            }
            one(ins[0].clone())
        }
        Mod => {
            arity(op, ins, 2, 2)?;
            same_dtype(op, ins)?;
            if ins[0].dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            attrs.int("fmod").map_err(InferError::attr)?;
            one(TensorType::new(ins[0].dtype, broadcast(op, ins)?))
        }
        ArgMax | ArgMin => {
            arity(op, ins, 1, 1)?;
            let x = &ins[0];
            if x.dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            let axis = axis_in(attrs, "axis", x.rank())?;
            let keep = attrs.int("keepdims").map_err(InferError::attr)? != 0;
            attrs.int("select_last_index").map_err(InferError::attr)?;
            if x.shape[axis] == 0 {
                return Err(InferError::from(format!(
                    "{op} axis {axis} of {x} is empty"
                )));
            }
            let mut shape = x.shape.clone();
            if keep {
                shape[axis] = 1;
            } else {
                shape.remove(axis);
            }
            one(TensorType::new(DType::I64, shape))
        }
        CumSum => {
            arity(op, ins, 1, 1)?;
            if ins[0].dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            axis_in(attrs, "axis", ins[0].rank())?;
            attrs.int("exclusive").map_err(InferError::attr)?;
            attrs.int("reverse").map_err(InferError::attr)?;
            one(ins[0].clone())
        }
        GatherElements => {
            arity(op, ins, 2, 2)?;
            index_operand(op, &ins[1])?;
            axis_in(attrs, "axis", ins[0].rank())?;
            if ins[1].rank() != ins[0].rank() {
                return Err(InferError::from(format!(
                    "GatherElements indices {} and data {} differ in rank",
                    ins[1], ins[0]
                )));
            }
            one(TensorType::new(ins[0].dtype, ins[1].shape.clone()))
        }
        Trilu => {
            arity(op, ins, 1, 1)?;
            if ins[0].rank() < 2 {
                return Err(InferError::from(format!(
                    "Trilu needs rank >= 2, got {}",
                    ins[0]
                )));
            }
            attrs.int("upper").map_err(InferError::attr)?;
            attrs.int("k").map_err(InferError::attr)?;
            one(ins[0].clone())
        }
        Hardmax => {
            arity(op, ins, 1, 1)?;
            float_operand(op, &ins[0])?;
            axis_in(attrs, "axis", ins[0].rank())?;
            one(ins[0].clone())
        }
        InstanceNormalization => {
            arity(op, ins, 3, 3)?;
            float_operand(op, &ins[0])?;
            same_dtype(op, ins)?;
            attrs.float("epsilon").map_err(InferError::attr)?;
            let x = &ins[0];
            if x.rank() < 3 {
                return Err(InferError::from(format!(
                    "InstanceNormalization needs rank >= 3 (N, C, spatial...), got {x}"
                )));
            }
            for t in &ins[1..] {
                if t.shape != [x.shape[1]] {
                    return Err(InferError::from(format!(
                        "InstanceNormalization scale/B {t} must have shape [{}] (channels of {x})",
                        x.shape[1]
                    )));
                }
            }
            one(x.clone())
        }
        DepthToSpace | SpaceToDepth => {
            arity(op, ins, 1, 1)?;
            let x = &ins[0];
            let b = usize::try_from(attrs.int("blocksize").map_err(InferError::attr)?)
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| InferError::attr(format!("{op} blocksize must be positive")))?;
            if x.rank() != 4 {
                return Err(InferError::from(format!(
                    "{op} needs [N, C, H, W], got {x}"
                )));
            }
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
            let mode = attrs.str("mode").map_err(InferError::attr)?;
            if mode != "DCR" && mode != "CRD" {
                return Err(InferError::attr(format!("{op} mode '{mode}' is unknown")));
            }
            let shape = if op == DepthToSpace {
                if c % (b * b) != 0 {
                    return Err(InferError::from(format!(
                        "DepthToSpace channels of {x} are not divisible by blocksize^2 ({})",
                        b * b
                    )));
                }
                vec![n, c / (b * b), h * b, w * b]
            } else {
                if h % b != 0 || w % b != 0 {
                    return Err(InferError::from(format!(
                        "SpaceToDepth H and W of {x} are not divisible by blocksize {b}"
                    )));
                }
                vec![n, c * b * b, h / b, w / b]
            };
            one(TensorType::new(x.dtype, shape))
        }
        Add | Sub | Mul | Div => {
            arity(op, ins, 2, 2)?;
            same_dtype(op, ins)?;
            if ins[0].dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            one(TensorType::new(ins[0].dtype, broadcast(op, ins)?))
        }
        Pow => {
            arity(op, ins, 2, 2)?;
            if ins[0].dtype == DType::Bool || ins[1].dtype == DType::Bool {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            one(TensorType::new(ins[0].dtype, broadcast(op, ins)?))
        }
        Sum | Max | Min => {
            arity(op, ins, 1, usize::MAX)?;
            same_dtype(op, ins)?;
            one(TensorType::new(ins[0].dtype, broadcast(op, ins)?))
        }
        Equal | Less | Greater | LessOrEqual | GreaterOrEqual => {
            arity(op, ins, 2, 2)?;
            same_dtype(op, ins)?;
            one(TensorType::new(DType::Bool, broadcast(op, ins)?))
        }
        And | Or | Xor => {
            arity(op, ins, 2, 2)?;
            for t in ins {
                if t.dtype != DType::Bool {
                    return Err(InferError::ty(format!("{op} needs bool operands, got {t}")));
                }
            }
            one(TensorType::new(DType::Bool, broadcast(op, ins)?))
        }
        Not => {
            arity(op, ins, 1, 1)?;
            if ins[0].dtype != DType::Bool {
                return Err(InferError::ty(format!(
                    "Not needs a bool operand, got {}",
                    ins[0]
                )));
            }
            one(ins[0].clone())
        }
        IsNaN | IsInf => {
            arity(op, ins, 1, 1)?;
            if !ins[0].dtype.is_float() {
                return Err(InferError::ty(format!(
                    "{op} needs a float operand, got {}",
                    ins[0]
                )));
            }
            if op == IsInf {
                attrs.int("detect_negative").map_err(InferError::attr)?;
                attrs.int("detect_positive").map_err(InferError::attr)?;
            }
            one(TensorType::new(DType::Bool, ins[0].shape.clone()))
        }
        Where => {
            arity(op, ins, 3, 3)?;
            if ins[0].dtype != DType::Bool {
                return Err(InferError::ty(format!(
                    "Where needs a bool condition, got {}",
                    ins[0]
                )));
            }
            same_dtype(op, &ins[1..])?;
            one(TensorType::new(ins[1].dtype, broadcast(op, ins)?))
        }
        Cast => {
            arity(op, ins, 1, 1)?;
            one(TensorType::new(
                attrs.dtype("to").map_err(InferError::attr)?,
                ins[0].shape.clone(),
            ))
        }
        MatMul => {
            arity(op, ins, 2, 2)?;
            same_dtype(op, ins)?;
            // The optimizer's layout attributes: operands and result seen through transposes.
            let view = |name: &str, shape: &[usize]| -> Result<Vec<usize>, InferError> {
                match attrs.get(name) {
                    None => Ok(shape.to_vec()),
                    Some(_) => {
                        let perm = attrs.usizes(name).map_err(InferError::attr)?;
                        permuted(&format!("MatMul {name}"), &perm, shape)
                    }
                }
            };
            let y = matmul_shape(
                &view("perm_a", &ins[0].shape)?,
                &view("perm_b", &ins[1].shape)?,
            )?;
            one(TensorType::new(ins[0].dtype, view("perm_y", &y)?))
        }
        Gemm => gemm(attrs, ins),
        Conv => conv(attrs, ins, false),
        ConvTranspose => conv(attrs, ins, true),
        FusedConv => fused_conv(attrs, ins),
        FusedGemm => fused_gemm(attrs, ins),
        Softmax | LogSoftmax => {
            arity(op, ins, 1, 1)?;
            float_operand(op, &ins[0])?;
            axis_in(attrs, "axis", ins[0].rank())?;
            one(ins[0].clone())
        }
        LayerNormalization => {
            arity(op, ins, 2, 3)?;
            float_operand(op, &ins[0])?;
            let axis = axis_in(attrs, "axis", ins[0].rank())?;
            attrs.float("epsilon").map_err(InferError::attr)?;
            let norm = &ins[0].shape[axis..];
            for t in &ins[1..] {
                if t.dtype != ins[0].dtype {
                    return Err(InferError::ty(format!(
                        "LayerNormalization scale/bias {t} differ from X {}",
                        ins[0]
                    )));
                }
                if broadcast_shapes(&t.shape, norm).as_deref() != Some(norm) {
                    return Err(InferError::from(format!(
                        "LayerNormalization scale/bias {t} do not broadcast to the normalized dims {norm:?}"
                    )));
                }
            }
            match opt_int(attrs, "num_outputs", 1)? {
                1 => one(ins[0].clone()),
                3 => {
                    let mut stat = ins[0].shape[..axis].to_vec();
                    stat.resize(ins[0].rank(), 1);
                    let st = TensorType::new(DType::F32, stat);
                    Ok(vec![ins[0].clone(), st.clone(), st])
                }
                k => Err(InferError::attr(format!(
                    "LayerNormalization num_outputs {k} must be 1 or 3"
                ))),
            }
        }
        BatchNormalization => {
            arity(op, ins, 5, 5)?;
            float_operand(op, &ins[0])?;
            attrs.float("epsilon").map_err(InferError::attr)?;
            let x = &ins[0];
            if x.rank() < 2 {
                return Err(InferError::from(format!(
                    "BatchNormalization needs rank >= 2, got {x}"
                )));
            }
            for t in &ins[1..] {
                if t.shape != [x.shape[1]] {
                    return Err(InferError::from(format!(
                        "BatchNormalization parameter {t} must have shape [{}] (channels of {x})",
                        x.shape[1]
                    )));
                }
            }
            one(x.clone())
        }
        ReduceSum | ReduceMean | ReduceMax | ReduceMin => {
            arity(op, ins, 1, 1)?;
            let x = &ins[0];
            if x.dtype == DType::Bool && matches!(op, ReduceSum | ReduceMean) {
                return Err(InferError::ty(format!("{op} does not take bool operands")));
            }
            let axes = attrs.ints("axes").map_err(InferError::attr)?;
            let keep = attrs.int("keepdims").map_err(InferError::attr)? != 0;
            let mut seen = vec![false; x.rank()];
            for &a in axes {
                let a = usize::try_from(a)
                    .ok()
                    .filter(|&a| a < x.rank())
                    .ok_or_else(|| format!("{op} axis {a} out of range for {x}"))?;
                if seen[a] {
                    return Err(InferError::from(format!("{op} axis {a} repeated")));
                }
                seen[a] = true;
            }
            let shape = x
                .shape
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (seen[i], keep) {
                    (true, true) => Some(1),
                    (true, false) => None,
                    _ => Some(d),
                })
                .collect::<Vec<_>>();
            one(TensorType::new(x.dtype, shape))
        }
        MaxPool | AveragePool | LpPool => pool(op, attrs, ins),
        GlobalAveragePool | GlobalMaxPool => {
            arity(op, ins, 1, 1)?;
            float_operand(op, &ins[0])?;
            if ins[0].rank() < 3 {
                return Err(InferError::from(format!(
                    "{op} needs rank >= 3 (N, C, spatial...), got {}",
                    ins[0]
                )));
            }
            let mut s = ins[0].shape.clone();
            for d in &mut s[2..] {
                *d = 1;
            }
            one(TensorType::new(ins[0].dtype, s))
        }
        Reshape => {
            arity(op, ins, 1, 1)?;
            let shape = attrs.usizes("shape").map_err(InferError::attr)?;
            if shape.iter().product::<usize>() != ins[0].numel() {
                return Err(InferError::from(format!(
                    "Reshape of {} ({} elements) to {shape:?} ({} elements)",
                    ins[0],
                    ins[0].numel(),
                    shape.iter().product::<usize>()
                )));
            }
            one(TensorType::new(ins[0].dtype, shape))
        }
        Transpose => {
            arity(op, ins, 1, 1)?;
            let perm = attrs.usizes("perm").map_err(InferError::attr)?;
            one(TensorType::new(
                ins[0].dtype,
                permuted("Transpose perm", &perm, &ins[0].shape)?,
            ))
        }
        Concat => {
            arity(op, ins, 1, usize::MAX)?;
            same_dtype(op, ins)?;
            let axis = axis_in(attrs, "axis", ins[0].rank())?;
            let mut shape = ins[0].shape.clone();
            shape[axis] = 0;
            for t in ins {
                let ok = t.rank() == shape.len()
                    && t.shape
                        .iter()
                        .zip(&ins[0].shape)
                        .enumerate()
                        .all(|(i, (a, b))| i == axis || a == b);
                if !ok {
                    return Err(InferError::from(format!(
                        "Concat on axis {axis}: {t} does not match {}",
                        ins[0]
                    )));
                }
                shape[axis] += t.shape[axis];
            }
            one(TensorType::new(ins[0].dtype, shape))
        }
        Split => {
            arity(op, ins, 1, 1)?;
            let axis = axis_in(attrs, "axis", ins[0].rank())?;
            let split = attrs.usizes("split").map_err(InferError::attr)?;
            if split.iter().sum::<usize>() != ins[0].shape[axis] {
                return Err(InferError::from(format!(
                    "Split sizes {split:?} do not add up to dim {axis} of {}",
                    ins[0]
                )));
            }
            Ok(split
                .iter()
                .map(|&s| {
                    let mut sh = ins[0].shape.clone();
                    sh[axis] = s;
                    TensorType::new(ins[0].dtype, sh)
                })
                .collect())
        }
        Slice => {
            arity(op, ins, 1, 1)?;
            let x = &ins[0];
            let (starts, ends, steps) = (
                attrs.ints("starts").map_err(InferError::attr)?,
                attrs.ints("ends").map_err(InferError::attr)?,
                attrs.ints("steps").map_err(InferError::attr)?,
            );
            if starts.len() != x.rank() || ends.len() != x.rank() || steps.len() != x.rank() {
                return Err(InferError::from(format!(
                    "Slice starts/ends/steps need one entry per dim of {x}"
                )));
            }
            let mut shape = Vec::with_capacity(x.rank());
            for i in 0..x.rank() {
                shape.push(slice_len(x.shape[i], starts[i], ends[i], steps[i])?);
            }
            one(TensorType::new(x.dtype, shape))
        }
        Expand => {
            arity(op, ins, 1, 1)?;
            let shape = attrs.usizes("shape").map_err(InferError::attr)?;
            if broadcast_shapes(&ins[0].shape, &shape).as_deref() != Some(&shape[..]) {
                return Err(InferError::from(format!(
                    "Expand of {} to {shape:?}: not broadcastable",
                    ins[0]
                )));
            }
            one(TensorType::new(ins[0].dtype, shape))
        }
        Tile => {
            arity(op, ins, 1, 1)?;
            let reps = attrs.usizes("repeats").map_err(InferError::attr)?;
            if reps.len() != ins[0].rank() {
                return Err(InferError::from(format!(
                    "Tile repeats {reps:?} need one entry per dim of {}",
                    ins[0]
                )));
            }
            one(TensorType::new(
                ins[0].dtype,
                ins[0]
                    .shape
                    .iter()
                    .zip(&reps)
                    .map(|(a, b)| a * b)
                    .collect::<Vec<_>>(),
            ))
        }
        Gather => {
            arity(op, ins, 2, 2)?;
            index_operand(op, &ins[1])?;
            let axis = axis_in(attrs, "axis", ins[0].rank())?;
            let d = &ins[0].shape;
            let shape = [&d[..axis], &ins[1].shape[..], &d[axis + 1..]].concat();
            one(TensorType::new(ins[0].dtype, shape))
        }
        GatherND => {
            arity(op, ins, 2, 2)?;
            index_operand(op, &ins[1])?;
            let b = usize::try_from(attrs.int("batch_dims").map_err(InferError::attr)?)
                .map_err(|_| "GatherND batch_dims must be >= 0".to_string())?;
            let (d, i) = (&ins[0].shape, &ins[1].shape);
            let last = *i
                .last()
                .ok_or(InferError::from("GatherND indices must have rank >= 1"))?;
            if b >= d.len().min(i.len()) || d[..b] != i[..b] || b + last > d.len() {
                return Err(InferError::from(format!(
                    "GatherND indices {} do not fit data {} with batch_dims {b}",
                    ins[1], ins[0]
                )));
            }
            let shape = [&i[..i.len() - 1], &d[b + last..]].concat();
            one(TensorType::new(ins[0].dtype, shape))
        }
        Resize => {
            arity(op, ins, 1, 1)?;
            let scales = attrs.floats("scales").map_err(InferError::attr)?;
            let mode = attrs.str("mode").map_err(InferError::attr)?;
            if !matches!(mode, "nearest" | "linear" | "cubic") {
                return Err(InferError::from(format!(
                    "Resize mode '{mode}' is unknown (nearest, linear, cubic)"
                )));
            }
            opt_int(attrs, "antialias", 0)?;
            if attrs.get("roi").is_some() {
                let roi = attrs.floats("roi").map_err(InferError::attr)?;
                if roi.len() != 2 * ins[0].rank() {
                    return Err(InferError::from(format!(
                        "Resize roi {roi:?} needs 2 entries per dim of {}",
                        ins[0]
                    )));
                }
            }
            attrs
                .str("coordinate_transformation_mode")
                .map_err(InferError::attr)?;
            attrs.str("nearest_mode").map_err(InferError::attr)?;
            if scales.len() != ins[0].rank() {
                return Err(InferError::from(format!(
                    "Resize scales {scales:?} need one entry per dim of {}",
                    ins[0]
                )));
            }
            let sizes = attrs.usizes("sizes").map_err(InferError::attr)?;
            if sizes.len() != ins[0].rank() {
                return Err(InferError::from(format!(
                    "Resize sizes {sizes:?} need one entry per dim of {}",
                    ins[0]
                )));
            }
            one(TensorType::new(ins[0].dtype, sizes))
        }
        Pad => {
            arity(op, ins, 1, 1)?;
            let pads = attrs.ints("pads").map_err(InferError::attr)?;
            let r = ins[0].rank();
            if pads.len() != 2 * r {
                return Err(InferError::from(format!(
                    "Pad pads {pads:?} need 2 entries per dim of {}",
                    ins[0]
                )));
            }
            let mode = attrs.str("mode").map_err(InferError::attr)?;
            if !matches!(mode, "constant" | "reflect" | "edge" | "wrap") {
                return Err(InferError::from(format!("Pad mode '{mode}' is unknown")));
            }
            attrs.float("value").map_err(InferError::attr)?;
            let mut shape = Vec::with_capacity(r);
            for i in 0..r {
                let n = ins[0].shape[i] as i64 + pads[i] + pads[i + r];
                shape.push(usize::try_from(n).map_err(|_| {
                    format!("Pad pads {pads:?} make dim {i} of {} negative", ins[0])
                })?);
            }
            one(TensorType::new(ins[0].dtype, shape))
        }
        LRN => {
            arity(op, ins, 1, 1)?;
            float_operand(op, &ins[0])?;
            for a in ["alpha", "beta", "bias"] {
                attrs.float(a)?;
            }
            attrs.int("size").map_err(InferError::attr)?;
            one(ins[0].clone())
        }
        _ => Err(InferError::from(format!("no shape rule for {op}"))),
    }
}

fn arity(op: Op, ins: &[TensorType], min: usize, max: usize) -> Result<(), InferError> {
    if ins.len() < min || ins.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(InferError::from(format!(
            "{op} takes {want} inputs, got {}",
            ins.len()
        )));
    }
    Ok(())
}

fn same_dtype(op: Op, ins: &[TensorType]) -> Result<(), InferError> {
    if let Some(t) = ins.iter().find(|t| t.dtype != ins[0].dtype) {
        return Err(InferError::ty(format!(
            "{op} operands must share a dtype: {} vs {t}",
            ins[0]
        )));
    }
    Ok(())
}

fn float_operand(op: Op, t: &TensorType) -> Result<(), InferError> {
    if !t.dtype.is_float() {
        return Err(InferError::ty(format!(
            "{op} needs a float operand, got {t}"
        )));
    }
    Ok(())
}

fn index_operand(op: Op, t: &TensorType) -> Result<(), InferError> {
    if !matches!(t.dtype, DType::I64 | DType::I32) {
        return Err(InferError::ty(format!(
            "{op} indices must be int64 or int32, got {t}"
        )));
    }
    Ok(())
}

fn axis_in(attrs: &Attrs, name: &str, rank: usize) -> Result<usize, InferError> {
    let a = attrs.int(name).map_err(InferError::attr)?;
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| InferError::attr(format!("{name} {a} out of range for rank {rank}")))
}

/// Numpy multidirectional broadcast of two shapes; `None` when incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn broadcast(op: Op, ins: &[TensorType]) -> Result<Vec<usize>, String> {
    let mut s = ins[0].shape.clone();
    for t in &ins[1..] {
        s = broadcast_shapes(&s, &t.shape).ok_or_else(|| {
            let all: Vec<String> = ins.iter().map(|t| t.to_string()).collect();
            format!("{op} operands do not broadcast: {}", all.join(", "))
        })?;
    }
    Ok(s)
}

/// `shape` permuted by `perm` (`out[i] = shape[perm[i]]`), checked to be a permutation of the
/// shape's axes; `what` names the attribute in the error.
pub fn permuted(what: &str, perm: &[usize], shape: &[usize]) -> Result<Vec<usize>, InferError> {
    let r = shape.len();
    if perm.len() != r {
        return Err(InferError::from(format!(
            "{what} {perm:?} does not fit rank {r} (shape {shape:?})"
        )));
    }
    let mut seen = vec![false; r];
    for &p in perm {
        if p >= r || seen[p] {
            return Err(InferError::from(format!(
                "{what} {perm:?} is not a permutation of 0..{r}"
            )));
        }
        seen[p] = true;
    }
    Ok(perm.iter().map(|&p| shape[p]).collect())
}

/// Output shape of numpy matmul.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, InferError> {
    if a.is_empty() || b.is_empty() {
        return Err(InferError::from(format!(
            "MatMul operands must have rank >= 1, got {a:?} and {b:?}"
        )));
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(InferError::from(format!(
            "MatMul contraction dims differ: {a:?} x {b:?} ({k} vs {k2})"
        )));
    }
    let batch = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])
        .ok_or_else(|| format!("MatMul batch dims do not broadcast: {a:?} x {b:?}"))?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(out)
}

fn gemm(attrs: &Attrs, ins: &[TensorType]) -> Result<Vec<TensorType>, InferError> {
    arity(Op::Gemm, ins, 2, 3)?;
    same_dtype(Op::Gemm, ins)?;
    attrs.float("alpha").map_err(InferError::attr)?;
    attrs.float("beta").map_err(InferError::attr)?;
    let (ta, tb) = (
        attrs.int("transA").map_err(InferError::attr)? != 0,
        attrs.int("transB").map_err(InferError::attr)? != 0,
    );
    let (a, b) = (&ins[0], &ins[1]);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(InferError::from(format!(
            "Gemm needs 2-D A and B, got {a} and {b}"
        )));
    }
    let (m, k) = if ta {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 {
        return Err(InferError::from(format!(
            "Gemm contraction dims differ: A {a} (transA={ta}) x B {b} (transB={tb})"
        )));
    }
    if let Some(c) = ins.get(2) {
        if broadcast_shapes(&c.shape, &[m, n]).as_deref() != Some(&[m, n][..]) {
            return Err(InferError::from(format!(
                "Gemm C {c} does not broadcast to [{m}, {n}]"
            )));
        }
    }
    Ok(vec![TensorType::new(a.dtype, vec![m, n])])
}

/// kernel_shape, strides, dilations (positive) and pads (begins then ends; negative only for
/// ConvTranspose).
type SpatialAttrs = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<i64>);

fn spatial_attrs(op: Op, attrs: &Attrs, nsp: usize, dil: bool) -> Result<SpatialAttrs, InferError> {
    let k = attrs.usizes("kernel_shape").map_err(InferError::attr)?;
    let s = attrs.usizes("strides").map_err(InferError::attr)?;
    let d = if dil {
        attrs.usizes("dilations").map_err(InferError::attr)?
    } else {
        vec![1; nsp]
    };
    let p = attrs.ints("pads").map_err(InferError::attr)?.to_vec();
    if k.len() != nsp || s.len() != nsp || d.len() != nsp || p.len() != 2 * nsp {
        return Err(InferError::from(format!(
            "{op} kernel_shape {k:?}, strides {s:?}, dilations {d:?}, pads {p:?} do not fit {nsp} spatial dims"
        )));
    }
    if s.contains(&0) || d.contains(&0) || k.contains(&0) {
        return Err(InferError::from(format!(
            "{op} kernel_shape, strides and dilations must be positive"
        )));
    }
    if op != Op::ConvTranspose && p.iter().any(|&x| x < 0) {
        return Err(InferError::attr(format!(
            "{op} pads {p:?} must not be negative"
        )));
    }
    Ok((k, s, d, p))
}

/// The `activation` attribute of a fused op.
fn fused_act(attrs: &Attrs) -> Result<FusedAct, InferError> {
    let act = attrs.str("activation").map_err(InferError::attr)?;
    FusedAct::parse(act).ok_or_else(|| {
        let names: Vec<&str> = FusedAct::ALL.iter().map(|a| a.name()).collect();
        InferError::attr(format!(
            "activation '{act}' is not one of {}",
            names.join(", ")
        ))
    })
}

/// [`Op::FusedConv`]: the convolution's type, checked against the residual operand.
/// Whether a fused node's `residual` attribute (absent: 0) names a residual operand.
fn residual_mode(op: Op, attrs: &Attrs) -> Result<bool, InferError> {
    match attrs.get("residual").map(|_| attrs.int("residual")) {
        None | Some(Ok(0)) => Ok(false),
        Some(Ok(1 | 2)) => Ok(true),
        Some(Ok(r)) => Err(InferError::attr(format!(
            "{} residual must be 0 (none), 1 (before the activation) or 2 (after it), got {r}",
            op.name()
        ))),
        Some(Err(e)) => Err(InferError::attr(e)),
    }
}

fn fused_gemm(attrs: &Attrs, ins: &[TensorType]) -> Result<Vec<TensorType>, InferError> {
    fused_act(attrs)?;
    if !residual_mode(Op::FusedGemm, attrs)? {
        return gemm(attrs, ins);
    }
    arity(Op::FusedGemm, ins, 4, 4)?;
    let out = gemm(attrs, &ins[..3])?;
    if ins[3] != out[0] {
        return Err(InferError::ty(format!(
            "FusedGemm residual {} differs from the product's result {}",
            ins[3], out[0]
        )));
    }
    Ok(out)
}

fn fused_conv(attrs: &Attrs, ins: &[TensorType]) -> Result<Vec<TensorType>, InferError> {
    fused_act(attrs)?;
    let residual = residual_mode(Op::FusedConv, attrs)?;
    let n_conv = ins.len() - usize::from(residual && !ins.is_empty());
    let out = conv(attrs, &ins[..n_conv], false)?;
    if residual {
        let r = &ins[n_conv];
        if *r != out[0] {
            return Err(InferError::ty(format!(
                "FusedConv residual {r} differs from the convolution's result {}",
                out[0]
            )));
        }
    }
    Ok(out)
}

fn conv(attrs: &Attrs, ins: &[TensorType], transpose: bool) -> Result<Vec<TensorType>, InferError> {
    let op = if transpose {
        Op::ConvTranspose
    } else {
        Op::Conv
    };
    arity(op, ins, 2, 3)?;
    same_dtype(op, ins)?;
    float_operand(op, &ins[0])?;
    let (x, w) = (&ins[0], &ins[1]);
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(InferError::from(format!(
            "{op} needs X (N, C, spatial...) and W of the same rank, got {x} and {w}"
        )));
    }
    let nsp = x.rank() - 2;
    let (k, s, d, p) = spatial_attrs(op, attrs, nsp, true)?;
    let group = usize::try_from(attrs.int("group").map_err(InferError::attr)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or(InferError::from(format!("{op} group must be positive")))?;
    if w.shape[2..] != k[..] {
        return Err(InferError::from(format!(
            "{op} kernel_shape {k:?} differs from W {w}"
        )));
    }
    let c = x.shape[1];
    let mut out = vec![x.shape[0]];
    if !transpose {
        if c % group != 0 || w.shape[1] * group != c || w.shape[0] % group != 0 {
            return Err(InferError::from(format!("{op} channels: X {x}, W {w}, group {group} do not fit (W dim 1 x group must equal C)")));
        }
        out.push(w.shape[0]);
        for i in 0..nsp {
            let eff = d[i] * (k[i] - 1) + 1;
            let padded = x.shape[2 + i] + (p[i] + p[i + nsp]) as usize;
            if padded < eff {
                return Err(InferError::from(format!(
                    "{op} kernel (dilated {eff}) larger than padded input dim {padded} of {x}"
                )));
            }
            out.push((padded - eff) / s[i] + 1);
        }
    } else {
        let op_pad = attrs.usizes("output_padding").map_err(InferError::attr)?;
        if op_pad.len() != nsp {
            return Err(InferError::from(format!(
                "{op} output_padding {op_pad:?} does not fit {nsp} spatial dims"
            )));
        }
        if w.shape[0] != c || c % group != 0 {
            return Err(InferError::from(format!(
                "{op} channels: X {x}, W {w}, group {group} do not fit (W dim 0 must equal C)"
            )));
        }
        out.push(w.shape[1] * group);
        for i in 0..nsp {
            let full = s[i] * (x.shape[2 + i].max(1) - 1) + op_pad[i] + (k[i] - 1) * d[i] + 1;
            let n = full as i64 - p[i] - p[i + nsp];
            out.push(
                usize::try_from(n)
                    .map_err(|_| format!("{op} pads {p:?} exceed the output size"))?,
            );
        }
    }
    if let Some(b) = ins.get(2) {
        if b.shape != [out[1]] {
            return Err(InferError::from(format!(
                "{op} bias {b} must have shape [{}]",
                out[1]
            )));
        }
    }
    Ok(vec![TensorType::new(x.dtype, out)])
}

fn pool(op: Op, attrs: &Attrs, ins: &[TensorType]) -> Result<Vec<TensorType>, InferError> {
    arity(op, ins, 1, 1)?;
    let x = &ins[0];
    float_operand(op, x)?;
    if x.rank() < 3 {
        return Err(InferError::from(format!(
            "{op} needs rank >= 3 (N, C, spatial...), got {x}"
        )));
    }
    let nsp = x.rank() - 2;
    let (k, s, d, p) = spatial_attrs(op, attrs, nsp, true)?;
    let ceil = attrs.int("ceil_mode").map_err(InferError::attr)? != 0;
    if op == Op::AveragePool {
        attrs.int("count_include_pad").map_err(InferError::attr)?;
    }
    if op == Op::LpPool {
        attrs.int("p").map_err(InferError::attr)?;
    }
    let mut out = x.shape[..2].to_vec();
    for i in 0..nsp {
        let eff = d[i] * (k[i] - 1) + 1;
        let padded = x.shape[2 + i] + (p[i] + p[i + nsp]) as usize;
        if padded < eff {
            return Err(InferError::from(format!(
                "{op} window (dilated {eff}) larger than padded input dim {padded} of {x}"
            )));
        }
        let mut n = if ceil {
            (padded - eff).div_ceil(s[i]) + 1
        } else {
            (padded - eff) / s[i] + 1
        };
        // ONNX: with ceil_mode, a last window that starts inside the end padding is dropped.
        if ceil && (n - 1) * s[i] >= x.shape[2 + i] + p[i] as usize {
            n -= 1;
        }
        out.push(n);
    }
    let y = TensorType::new(x.dtype, out);
    match (op, opt_int(attrs, "num_outputs", 1)?) {
        (_, 1) => Ok(vec![y]),
        (Op::MaxPool, 2) => {
            opt_int(attrs, "storage_order", 0)?;
            let idx = TensorType::new(DType::I64, y.shape.clone());
            Ok(vec![y, idx])
        }
        (_, k) => Err(InferError::attr(format!(
            "{op} num_outputs {k} is not supported"
        ))),
    }
}

/// An optional int attribute with its default.
fn opt_int(attrs: &Attrs, name: &str, default: i64) -> Result<i64, InferError> {
    if attrs.get(name).is_none() {
        return Ok(default);
    }
    attrs.int(name).map_err(InferError::attr)
}

/// Number of elements a canonical slice `start..end` by `step` selects from a dim of size `dim`.
pub fn slice_len(dim: usize, start: i64, end: i64, step: i64) -> Result<usize, InferError> {
    let d = dim as i64;
    if step == 0 {
        return Err(InferError::attr("Slice step must not be 0".into()));
    }
    let ok = if step > 0 {
        (0..=d).contains(&start) && (0..=d).contains(&end)
    } else {
        (-1..d).contains(&start) && (-1..d).contains(&end) || (d == 0 && start == -1 && end == -1)
    };
    if !ok {
        return Err(InferError::from(format!(
            "Slice bounds start {start}, end {end}, step {step} are not canonical for dim {dim}"
        )));
    }
    let n = if step > 0 {
        (end - start + step - 1) / step
    } else {
        (start - end + (-step) - 1) / (-step)
    };
    Ok(n.max(0) as usize)
}
