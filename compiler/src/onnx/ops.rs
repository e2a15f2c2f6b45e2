//! Per-op conversion of ONNX nodes into canonical graph-IR nodes (see [`crate::graph::op`]),
//! including the opset-dependent attribute-to-input migrations (Squeeze/Unsqueeze/Split/
//! Reduce* axes, Clip bounds, Pad pads, Slice bounds, Resize scales/sizes), `auto_pad`
//! resolution, and the import-only ops (`Constant`, `ConstantOfShape`, `Shape`, `Range`).

use super::fold::fold;
use super::import::node_name;
use super::proto::{AttributeProto, NodeProto};
use super::tensor::{onnx_type_name, tensor_from_proto};
use super::ExternalData;
use crate::diag::{Code, Diagnostic};
use crate::graph::shape::{broadcast_shapes, infer, InferErrorKind};
use crate::graph::{AttrValue as A, Attrs, Graph, Op, TensorType, ValueId};
use crate::interp::shape_ops;
use crate::tensor::{DType, Tensor};
use std::collections::HashMap;

pub(super) struct Cx<'a> {
    pub g: Graph,
    pub env: HashMap<String, ValueId>,
    pub opset: i64,
    pub ext: &'a dyn ExternalData,
}

/// One ONNX node being converted.
struct N<'n> {
    p: &'n NodeProto,
    name: String,
    op: String,
    attrs: HashMap<&'n str, &'n AttributeProto>,
    ins: Vec<Option<ValueId>>,
}

type R<T> = Result<T, Diagnostic>;

impl N<'_> {
    fn err(&self, code: Code, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, msg).at_node(&self.name, &self.op)
    }

    fn attr(&self, k: &str) -> Option<&AttributeProto> {
        self.attrs.get(k).copied()
    }

    fn int(&self, k: &str, default: i64) -> R<i64> {
        match self.attr(k) {
            None => Ok(default),
            Some(a) => a.i.ok_or_else(|| {
                self.err(
                    Code::BadAttribute,
                    format!("attribute '{k}' must be an int"),
                )
            }),
        }
    }

    fn float(&self, k: &str, default: f32) -> R<f32> {
        match self.attr(k) {
            None => Ok(default),
            Some(a) => a.f.ok_or_else(|| {
                self.err(
                    Code::BadAttribute,
                    format!("attribute '{k}' must be a float"),
                )
            }),
        }
    }

    fn string(&self, k: &str, default: &str) -> R<String> {
        match self.attr(k) {
            None => Ok(default.to_string()),
            Some(a) => {
                a.s.as_ref()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .ok_or_else(|| {
                        self.err(
                            Code::BadAttribute,
                            format!("attribute '{k}' must be a string"),
                        )
                    })
            }
        }
    }

    fn ints(&self, k: &str) -> Option<Vec<i64>> {
        self.attr(k).map(|a| a.ints.clone())
    }

    fn floats(&self, k: &str) -> Option<Vec<f32>> {
        self.attr(k).map(|a| a.floats.clone())
    }

    fn input(&self, i: usize) -> Option<ValueId> {
        self.ins.get(i).copied().flatten()
    }

    fn req(&self, i: usize) -> R<ValueId> {
        self.input(i).ok_or_else(|| {
            self.err(
                Code::UndefinedValue,
                format!("required input {i} is missing"),
            )
        })
    }
}

impl Cx<'_> {
    fn ty(&self, v: ValueId) -> &TensorType {
        self.g.ty(v)
    }

    fn konst(&self, v: ValueId) -> Option<&Tensor> {
        self.g.const_value(v)
    }

    /// The values of a constant int input (axes, shape, pads, ...); errors name the input.
    fn const_ints(&self, n: &N, i: usize, what: &str) -> R<Option<Vec<i64>>> {
        let Some(v) = n.input(i) else { return Ok(None) };
        match self.konst(v) {
            Some(t) if matches!(t.dtype(), DType::I64 | DType::I32) => Ok(Some(t.to_i64_vec())),
            Some(t) => Err(n.err(Code::TypeMismatch, format!("{what} (input {i}) must be int64, got {}", t.dtype()))),
            None => Err(n.err(
                Code::DynamicValue,
                format!("{what} (input {i}, '{}') is computed at run time; tahoma needs it at compile time", self.g.value(v).name),
            )
            .help("bind symbolic dims with --dim/--shape so shape arithmetic folds, or export the model with static values")),
        }
    }

    fn const_floats(&self, n: &N, i: usize, what: &str) -> R<Option<Vec<f32>>> {
        let Some(v) = n.input(i) else { return Ok(None) };
        match self.konst(v) {
            Some(t) => Ok(Some(t.to_f32_vec())),
            None => Err(n.err(
                Code::DynamicValue,
                format!(
                    "{what} (input {i}) is computed at run time; tahoma needs it at compile time"
                ),
            )),
        }
    }

    fn bind_const(&mut self, name: &str, t: Tensor) {
        let v = self.g.add_const(name.to_string(), t);
        self.env.insert(name.to_string(), v);
    }

    /// Adds a canonical node (or its folded value) and binds its outputs to `outs`.
    fn emit(
        &mut self,
        n: &N,
        op: Op,
        attrs: Attrs,
        inputs: Vec<ValueId>,
        outs: &[String],
    ) -> R<Vec<ValueId>> {
        let in_tys: Vec<TensorType> = inputs.iter().map(|&v| self.ty(v).clone()).collect();
        let tys = infer(op, &attrs, &in_tys).map_err(|e| {
            let code = match e.kind {
                InferErrorKind::Type => Code::TypeMismatch,
                InferErrorKind::Shape => Code::ShapeMismatch,
                InferErrorKind::Attr => Code::BadAttribute,
            };
            let shapes: Vec<String> = in_tys.iter().map(|t| t.to_string()).collect();
            n.err(
                code,
                format!("{} (operands: {})", e.message, shapes.join(", ")),
            )
            .help("check the model's input shapes (--dim/--shape) and this node's attributes")
        })?;
        if tys.len() < outs.len() {
            return Err(n.err(
                Code::BadAttribute,
                format!(
                    "{} outputs requested, the op gives {}",
                    outs.len(),
                    tys.len()
                ),
            ));
        }
        let consts: Option<Vec<&Tensor>> = inputs.iter().map(|&v| self.konst(v)).collect();
        if let Some(cs) = consts.filter(|c| !c.is_empty()) {
            if let Some(vals) = fold(op, &attrs, &cs, &tys) {
                let mut ids = Vec::new();
                for (i, t) in vals.into_iter().enumerate() {
                    let name = outs.get(i).cloned().unwrap_or_default();
                    let name = if name.is_empty() {
                        format!("{}/out{i}", n.name)
                    } else {
                        name
                    };
                    let v = self.g.add_const(name.clone(), t);
                    self.env.insert(name, v);
                    ids.push(v);
                }
                return Ok(ids);
            }
        }
        let names: Vec<String> = tys
            .iter()
            .enumerate()
            .map(|(i, _)| match outs.get(i) {
                Some(s) if !s.is_empty() => s.clone(),
                _ => format!("{}/out{i}", n.name),
            })
            .collect();
        let node = self.g.add_node(
            n.name.clone(),
            op,
            attrs,
            inputs,
            names.iter().cloned().zip(tys).collect(),
        );
        let ids = self.g.node(node).outputs.clone();
        for (name, &v) in names.iter().zip(&ids) {
            self.env.insert(name.clone(), v);
        }
        Ok(ids)
    }

    /// A helper value name derived from the node (for nodes the importer inserts).
    fn aux(&self, n: &N, what: &str) -> String {
        let mut s = format!("{}/{what}", n.name);
        let mut k = 1;
        while self.env.contains_key(&s) {
            s = format!("{}/{what}{k}", n.name);
            k += 1;
        }
        s
    }

    pub fn node(&mut self, p: &NodeProto, index: usize) -> R<()> {
        let mut ins = Vec::with_capacity(p.input.len());
        for s in &p.input {
            ins.push(if s.is_empty() {
                None
            } else {
                self.env.get(s).copied()
            });
        }
        let n = N {
            p,
            name: node_name(p, index),
            op: p.op_type.clone().unwrap_or_default(),
            attrs: p
                .attribute
                .iter()
                .filter_map(|a| a.name.as_deref().map(|k| (k, a)))
                .collect(),
            ins,
        };
        // Trailing empty outputs are dropped; a used output the canonical op lacks is an error
        // raised by `emit`.
        let mut outs: Vec<String> = p.output.clone();
        while outs.last().is_some_and(|s| s.is_empty()) {
            outs.pop();
        }
        self.convert(&n, &outs)
    }

    fn convert(&mut self, n: &N, outs: &[String]) -> R<()> {
        let opset = self.opset;
        let out0 = outs.first().cloned().unwrap_or_default();
        let x = |i| n.req(i);
        let simple = |op| -> Op { op };
        match n.op.as_str() {
            // ---- import-only ops, always folded -------------------------------------------
            "Constant" => {
                let t = self.constant_attr(n)?;
                self.bind_const(&out0, t);
            }
            "ConstantOfShape" => {
                let shape = self.const_ints(n, 0, "shape")?.unwrap_or_default();
                let value = match n.attr("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => Some(
                        tensor_from_proto(t, self.ext).map_err(|d| d.at_node(&n.name, &n.op))?,
                    ),
                    None => None,
                };
                let t = shape_ops::constant_of_shape(&shape, value.as_ref())
                    .map_err(|e| n.err(Code::BadAttribute, e.to_string()))?;
                self.bind_const(&out0, t);
            }
            "Shape" => {
                let ty = self.ty(x(0)?).clone();
                let r = ty.rank() as i64;
                let norm = |v: i64| if v < 0 { (v + r).clamp(0, r) } else { v.clamp(0, r) } as usize;
                let start = norm(n.int("start", 0)?);
                let end = norm(n.int("end", r)?);
                let dims: Vec<i64> = ty.shape[start..end.max(start)]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                let len = dims.len();
                self.bind_const(
                    &out0,
                    Tensor::I64(
                        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[len]), dims)
                            .map_err(|e| n.err(Code::BadAttribute, e.to_string()))?,
                    ),
                );
            }
            "Range" => {
                let vals: Vec<&Tensor> = (0..3)
                    .map(|i| {
                        let v = x(i)?;
                        self.konst(v).ok_or_else(|| {
                            n.err(Code::DynamicValue, format!("Range input {i} is computed at run time; tahoma needs static ranges"))
                                .help("bind symbolic dims with --dim/--shape so the bounds fold")
                        })
                    })
                    .collect::<R<_>>()?;
                let t = shape_ops::range(vals[0], vals[1], vals[2])
                    .map_err(|e| n.err(Code::BadAttribute, e.to_string()))?;
                self.bind_const(&out0, t);
            }
            // ---- identities ------------------------------------------------------------------
            "Identity" => {
                self.emit(n, Op::Identity, Attrs::new(), vec![x(0)?], outs)?;
            }
            "Dropout" => {
                // Training mode drops random elements, except with ratio 0 (then it is the
                // identity, as in inference).
                let (training, ratio) = if opset >= 12 {
                    let training = match n.input(2) {
                        None => false,
                        Some(v) => self
                            .konst(v)
                            .is_none_or(|t| t.to_f32_vec().iter().any(|&b| b != 0.0)),
                    };
                    let ratio = match n.input(1) {
                        None => 0.5,
                        Some(v) => match self.konst(v).map(|t| t.to_f32_vec()) {
                            Some(r) if r.len() == 1 => r[0],
                            _ => 0.5,
                        },
                    };
                    (training, ratio)
                } else {
                    (
                        opset < 7 && n.int("is_test", 0)? == 0,
                        n.float("ratio", 0.5)?,
                    )
                };
                if training && ratio != 0.0 {
                    return Err(n.err(
                        Code::UnsupportedOp,
                        format!("Dropout in training mode (ratio {ratio}) is not supported: tahoma runs inference only"),
                    )
                    .help("export the model in inference mode (training_mode false, or is_test=1 before opset 7)"));
                }
                let xv = x(0)?;
                self.emit(
                    n,
                    Op::Identity,
                    Attrs::new(),
                    vec![xv],
                    &outs[..outs.len().min(1)],
                )?;
                if let Some(mask) = outs.get(1).filter(|m| !m.is_empty()) {
                    // Inference keeps every element: the mask is all true (bool from opset 10,
                    // the input's type before).
                    let ty = self.ty(xv).clone();
                    let t = if opset >= 10 {
                        Tensor::Bool(ndarray::ArrayD::from_elem(ndarray::IxDyn(&ty.shape), true))
                    } else {
                        Tensor::from_f32(ty.dtype, &ty.shape, &vec![1.0; ty.numel()])
                    };
                    self.bind_const(mask, t);
                }
            }
            // ---- elementwise ----------------------------------------------------------------
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "And" | "Or"
            | "Xor"
                if opset < 7 =>
            {
                self.legacy_broadcast(n, outs)?;
            }
            "Abs" | "Neg" | "Sqrt" | "Exp" | "Log" | "Reciprocal" | "Relu" | "Sigmoid" | "Tanh"
            | "Erf" | "Floor" | "Ceil" | "Sign" | "Not" | "IsNaN" | "HardSwish" | "Add" | "Sub"
            | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "LessOrEqual"
            | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Where" | "MatMul"
            | "GlobalAveragePool" | "GlobalMaxPool" | "Sum" | "Max" | "Min" | "Softplus"
            | "Softsign" | "Round" | "Sin" | "Cos" | "Tan" | "Asin" | "Acos" | "Atan" | "Sinh"
            | "Cosh" | "Asinh" | "Acosh" | "Atanh" | "Mish" => {
                let op = simple(
                    Op::from_name(&n.op)
                        .ok_or_else(|| n.err(Code::UnsupportedOp, "no graph op"))?,
                );
                let inputs: Vec<ValueId> = (0..n.p.input.len()).map(&x).collect::<R<_>>()?;
                self.emit(n, op, Attrs::new(), inputs, outs)?;
            }
            "LeakyRelu" => {
                let a = Attrs::new().with("alpha", A::Float(n.float("alpha", 0.01)?));
                self.emit(n, Op::LeakyRelu, a, vec![x(0)?], outs)?;
            }
            "Elu" | "Celu" | "ThresholdedRelu" | "Swish" => {
                let op = Op::from_name(&n.op)
                    .ok_or_else(|| n.err(Code::UnsupportedOp, "no graph op"))?;
                let a = Attrs::new().with("alpha", A::Float(n.float("alpha", 1.0)?));
                self.emit(n, op, a, vec![x(0)?], outs)?;
            }
            "Selu" => {
                let a = Attrs::new()
                    .with("alpha", A::Float(n.float("alpha", 1.673_263_2)?))
                    .with("gamma", A::Float(n.float("gamma", 1.050_701)?));
                self.emit(n, Op::Selu, a, vec![x(0)?], outs)?;
            }
            "Shrink" => {
                let a = Attrs::new()
                    .with("bias", A::Float(n.float("bias", 0.0)?))
                    .with("lambd", A::Float(n.float("lambd", 0.5)?));
                self.emit(n, Op::Shrink, a, vec![x(0)?], outs)?;
            }
            "PRelu" => {
                let (xv, sv) = (x(0)?, x(1)?);
                let (xt, st) = (self.ty(xv).clone(), self.ty(sv).clone());
                let mut slope = sv;
                // Before opset 7 a 1-D slope of C values applies per channel (dim 1).
                if opset < 7 && st.rank() == 1 && xt.rank() > 2 && st.shape[0] == xt.shape[1] {
                    let mut shape = st.shape.clone();
                    shape.resize(xt.rank() - 1, 1);
                    let name = self.aux(n, "slope");
                    slope = self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![sv], &[name])?[0];
                }
                self.emit(n, Op::PRelu, Attrs::new(), vec![xv, slope], outs)?;
            }
            "Mod" => {
                let a = Attrs::new().with("fmod", A::Int(n.int("fmod", 0)?));
                self.emit(n, Op::Mod, a, vec![x(0)?, x(1)?], outs)?;
            }
            "ArgMax" | "ArgMin" => {
                let op = if n.op == "ArgMax" {
                    Op::ArgMax
                } else {
                    Op::ArgMin
                };
                let xv = x(0)?;
                let axis = norm_axis(n, n.int("axis", 0)?, self.ty(xv).rank() as i64)?;
                let a = Attrs::new()
                    .with("axis", A::Int(axis as i64))
                    .with("keepdims", A::Int(n.int("keepdims", 1)?))
                    .with("select_last_index", A::Int(n.int("select_last_index", 0)?));
                self.emit(n, op, a, vec![xv], outs)?;
            }
            "CumSum" => {
                let xv = x(0)?;
                let axis = self
                    .const_ints(n, 1, "axis")?
                    .and_then(|v| (v.len() == 1).then(|| v[0]))
                    .ok_or_else(|| {
                        n.err(Code::BadAttribute, "CumSum needs a one-element axis input")
                    })?;
                let axis = norm_axis(n, axis, self.ty(xv).rank() as i64)?;
                let a = Attrs::new()
                    .with("axis", A::Int(axis as i64))
                    .with("exclusive", A::Int(n.int("exclusive", 0)?))
                    .with("reverse", A::Int(n.int("reverse", 0)?));
                self.emit(n, Op::CumSum, a, vec![xv], outs)?;
            }
            "GatherElements" => {
                let xv = x(0)?;
                let axis = norm_axis(n, n.int("axis", 0)?, self.ty(xv).rank() as i64)?;
                let a = Attrs::new().with("axis", A::Int(axis as i64));
                self.emit(n, Op::GatherElements, a, vec![xv, x(1)?], outs)?;
            }
            "Trilu" => {
                let k = match self.const_ints(n, 1, "k")? {
                    None => 0,
                    Some(v) if v.len() == 1 => v[0],
                    Some(v) => {
                        return Err(n.err(
                            Code::BadAttribute,
                            format!("Trilu k must hold one value, got {v:?}"),
                        ))
                    }
                };
                let a = Attrs::new()
                    .with("upper", A::Int(n.int("upper", 1)?))
                    .with("k", A::Int(k));
                self.emit(n, Op::Trilu, a, vec![x(0)?], outs)?;
            }
            "InstanceNormalization" => {
                let a = Attrs::new().with("epsilon", A::Float(n.float("epsilon", 1e-5)?));
                self.emit(
                    n,
                    Op::InstanceNormalization,
                    a,
                    vec![x(0)?, x(1)?, x(2)?],
                    outs,
                )?;
            }
            "DepthToSpace" | "SpaceToDepth" => {
                let b = n.attr("blocksize").and_then(|a| a.i).ok_or_else(|| {
                    n.err(
                        Code::BadAttribute,
                        format!("{} needs attribute 'blocksize'", n.op),
                    )
                })?;
                let mut a = Attrs::new().with("blocksize", A::Int(b));
                a.set("mode", A::Str(n.string("mode", "DCR")?));
                let op = if n.op == "DepthToSpace" {
                    Op::DepthToSpace
                } else {
                    Op::SpaceToDepth
                };
                self.emit(n, op, a, vec![x(0)?], outs)?;
            }
            "CastLike" => {
                let to = self.ty(x(1)?).dtype;
                self.emit(
                    n,
                    Op::Cast,
                    Attrs::new().with("to", A::Type(to)),
                    vec![x(0)?],
                    outs,
                )?;
            }
            "Size" => {
                let numel = self.ty(x(0)?).numel() as i64;
                self.bind_const(&out0, Tensor::I64(ndarray::arr0(numel).into_dyn()));
            }
            "HardSigmoid" => {
                let a = Attrs::new()
                    .with("alpha", A::Float(n.float("alpha", 0.2)?))
                    .with("beta", A::Float(n.float("beta", 0.5)?));
                self.emit(n, Op::HardSigmoid, a, vec![x(0)?], outs)?;
            }
            "Gelu" => {
                let a = Attrs::new().with("approximate", A::Str(n.string("approximate", "none")?));
                self.emit(n, Op::Gelu, a, vec![x(0)?], outs)?;
            }
            "IsInf" => {
                let a = Attrs::new()
                    .with("detect_negative", A::Int(n.int("detect_negative", 1)?))
                    .with("detect_positive", A::Int(n.int("detect_positive", 1)?));
                self.emit(n, Op::IsInf, a, vec![x(0)?], outs)?;
            }
            "Clip" => {
                let mut a = Attrs::new();
                if opset < 11 {
                    if let Some(v) = n.attr("min").and_then(|a| a.f) {
                        a.set("min", A::Float(v));
                    }
                    if let Some(v) = n.attr("max").and_then(|a| a.f) {
                        a.set("max", A::Float(v));
                    }
                } else {
                    for (i, k) in [(1, "min"), (2, "max")] {
                        if let Some(v) = self.const_floats(n, i, k)? {
                            let f = *v.first().ok_or_else(|| {
                                n.err(Code::BadAttribute, format!("Clip {k} is empty"))
                            })?;
                            a.set(k, A::Float(f));
                        }
                    }
                }
                self.emit(n, Op::Clip, a, vec![x(0)?], outs)?;
            }
            "Cast" => {
                let code = if opset < 6 {
                    // Cast-1 names the target type with a string ("FLOAT", "INT64", ...).
                    let name = n.string("to", "")?;
                    legacy_type_code(&name).ok_or_else(|| {
                        n.err(
                            Code::UnsupportedDtype,
                            format!("Cast to '{name}' is not supported"),
                        )
                        .help(
                            "supported element types: float, float16, bfloat16, int64, int32, bool",
                        )
                    })?
                } else {
                    n.int("to", 0)? as i32
                };
                let to = DType::from_onnx_code(code).ok_or_else(|| {
                    n.err(
                        Code::UnsupportedDtype,
                        format!("Cast to {} is not supported", onnx_type_name(code)),
                    )
                    .help("supported element types: float, float16, bfloat16, int64, int32, bool")
                })?;
                self.emit(
                    n,
                    Op::Cast,
                    Attrs::new().with("to", A::Type(to)),
                    vec![x(0)?],
                    outs,
                )?;
            }
            // ---- matmul family ----------------------------------------------------------------
            "Gemm" => {
                let a = Attrs::new()
                    .with("alpha", A::Float(n.float("alpha", 1.0)?))
                    .with("beta", A::Float(n.float("beta", 1.0)?))
                    .with("transA", A::Int(n.int("transA", 0)?))
                    .with("transB", A::Int(n.int("transB", 0)?));
                let mut inputs = vec![x(0)?, x(1)?];
                inputs.extend(n.input(2));
                self.emit(n, Op::Gemm, a, inputs, outs)?;
            }
            "Conv" | "ConvTranspose" => self.conv(n, outs)?,
            "MaxPool" | "AveragePool" | "LpPool" => self.pool(n, outs)?,
            // ---- normalisation ------------------------------------------------------------
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                let op = match n.op.as_str() {
                    "Softmax" => Op::Softmax,
                    "LogSoftmax" => Op::LogSoftmax,
                    _ => Op::Hardmax,
                };
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let r = ty.rank() as i64;
                let axis = norm_axis(n, n.int("axis", if opset < 13 { 1 } else { -1 })?, r)?;
                if opset >= 13 || axis + 1 == ty.rank() {
                    self.emit(
                        n,
                        op,
                        Attrs::new().with("axis", A::Int(axis as i64)),
                        vec![xv],
                        outs,
                    )?;
                } else {
                    // Before opset 13 the op works on the input coerced to 2-D at `axis`.
                    let rows: usize = ty.shape[..axis].iter().product();
                    let cols: usize = ty.shape[axis..].iter().product();
                    let flat_name = self.aux(n, "flat");
                    let flat = self.emit(
                        n,
                        Op::Reshape,
                        reshape_attrs(&[rows, cols]),
                        vec![xv],
                        &[flat_name],
                    )?[0];
                    let sm_name = self.aux(n, "2d");
                    let sm = self.emit(
                        n,
                        op,
                        Attrs::new().with("axis", A::Int(1)),
                        vec![flat],
                        &[sm_name],
                    )?[0];
                    self.emit(n, Op::Reshape, reshape_attrs(&ty.shape), vec![sm], outs)?;
                }
            }
            "LayerNormalization" => {
                let xv = x(0)?;
                let axis = norm_axis(n, n.int("axis", -1)?, self.ty(xv).rank() as i64)?;
                let mut a = Attrs::new()
                    .with("axis", A::Int(axis as i64))
                    .with("epsilon", A::Float(n.float("epsilon", 1e-5)?));
                if outs.len() > 1 {
                    // Mean and InvStdDev (float32, the default stash_type).
                    if n.int("stash_type", 1)? != 1 {
                        return Err(n.err(
                            Code::UnsupportedDtype,
                            "LayerNormalization Mean/InvStdDev with a stash_type other than float are not supported",
                        ));
                    }
                    a.set("num_outputs", A::Int(3));
                }
                let mut inputs = vec![xv, x(1)?];
                inputs.extend(n.input(2));
                self.emit(n, Op::LayerNormalization, a, inputs, outs)?;
            }
            "BatchNormalization" => {
                // Before opset 7 `is_test` selects inference (1) or training (0, the default).
                let training = if opset < 7 {
                    n.int("is_test", 0)? == 0
                } else {
                    n.int("training_mode", 0)? != 0
                };
                if training || outs.len() > 1 {
                    return Err(n.err(
                        Code::UnsupportedOp,
                        "BatchNormalization in training mode (batch statistics, running-mean outputs) is not supported: tahoma runs inference only",
                    )
                    .help("export the model in inference mode (training_mode=0, or is_test=1 before opset 7)"));
                }
                if n.int("spatial", 1)? != 1 {
                    return Err(n.err(
                        Code::BadAttribute,
                        "BatchNormalization with spatial=0 is not supported",
                    ));
                }
                let a = Attrs::new().with("epsilon", A::Float(n.float("epsilon", 1e-5)?));
                let inputs = (0..5).map(&x).collect::<R<_>>()?;
                self.emit(n, Op::BatchNormalization, a, inputs, outs)?;
            }
            "LRN" => {
                let size = n
                    .attr("size")
                    .and_then(|a| a.i)
                    .ok_or_else(|| n.err(Code::BadAttribute, "LRN needs attribute 'size'"))?;
                let a = Attrs::new()
                    .with("alpha", A::Float(n.float("alpha", 1e-4)?))
                    .with("beta", A::Float(n.float("beta", 0.75)?))
                    .with("bias", A::Float(n.float("bias", 1.0)?))
                    .with("size", A::Int(size));
                self.emit(n, Op::LRN, a, vec![x(0)?], outs)?;
            }
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" => {
                let op = Op::from_name(&n.op)
                    .ok_or_else(|| n.err(Code::UnsupportedOp, "no graph op"))?;
                let xv = x(0)?;
                let r = self.ty(xv).rank() as i64;
                let axes_as_input = if n.op == "ReduceSum" {
                    opset >= 13
                } else {
                    opset >= 18
                };
                let axes = if axes_as_input {
                    self.const_ints(n, 1, "axes")?
                } else {
                    n.ints("axes")
                };
                let axes = axes.filter(|a| !a.is_empty());
                let axes: Vec<usize> = match axes {
                    Some(a) => norm_axes(n, &a, r)?,
                    None if n.int("noop_with_empty_axes", 0)? != 0 => {
                        self.emit(n, Op::Identity, Attrs::new(), vec![xv], outs)?;
                        return Ok(());
                    }
                    None => (0..r as usize).collect(),
                };
                let a = Attrs::new()
                    .with("axes", A::Ints(axes.iter().map(|&a| a as i64).collect()))
                    .with("keepdims", A::Int(n.int("keepdims", 1)?));
                self.emit(n, op, a, vec![xv], outs)?;
            }
            // ---- shape ops ------------------------------------------------------------------------
            "Reshape" => {
                let xv = x(0)?;
                let target = if opset < 5 {
                    n.ints("shape").ok_or_else(|| {
                        n.err(
                            Code::BadAttribute,
                            "Reshape (opset < 5) needs attribute 'shape'",
                        )
                    })?
                } else {
                    self.const_ints(n, 1, "shape")?
                        .ok_or_else(|| n.err(Code::UndefinedValue, "Reshape needs a shape input"))?
                };
                let allowzero = n.int("allowzero", 0)? != 0;
                let shape = shape_ops::reshape_target(&self.ty(xv).shape, &target, allowzero)
                    .map_err(|e| {
                        n.err(
                            Code::ShapeMismatch,
                            format!("{} (input {})", e, self.ty(xv)),
                        )
                    })?;
                self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![xv], outs)?;
            }
            "Flatten" => {
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let axis = n.int("axis", 1)?;
                let r = ty.rank() as i64;
                let axis = if axis < 0 { axis + r } else { axis };
                if !(0..=r).contains(&axis) {
                    return Err(n.err(
                        Code::BadAttribute,
                        format!("Flatten axis {axis} out of range for {ty}"),
                    ));
                }
                let a = axis as usize;
                let shape = [
                    ty.shape[..a].iter().product(),
                    ty.shape[a..].iter().product(),
                ];
                self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![xv], outs)?;
            }
            "Squeeze" => {
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let axes = if opset >= 13 {
                    self.const_ints(n, 1, "axes")?
                } else {
                    n.ints("axes")
                };
                let axes = match axes {
                    Some(a) if !a.is_empty() => norm_axes(n, &a, ty.rank() as i64)?,
                    _ => (0..ty.rank()).filter(|&i| ty.shape[i] == 1).collect(),
                };
                if let Some(&a) = axes.iter().find(|&&a| ty.shape[a] != 1) {
                    return Err(n.err(
                        Code::ShapeMismatch,
                        format!("Squeeze axis {a} of {ty} is not 1"),
                    ));
                }
                let shape: Vec<usize> = (0..ty.rank())
                    .filter(|i| !axes.contains(i))
                    .map(|i| ty.shape[i])
                    .collect();
                self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![xv], outs)?;
            }
            "Unsqueeze" => {
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let axes = if opset >= 13 {
                    self.const_ints(n, 1, "axes")?
                } else {
                    n.ints("axes")
                };
                let axes = axes.ok_or_else(|| n.err(Code::BadAttribute, "Unsqueeze needs axes"))?;
                let out_rank = ty.rank() + axes.len();
                let axes = norm_axes(n, &axes, out_rank as i64)?;
                let mut it = ty.shape.iter();
                let shape: Vec<usize> = (0..out_rank)
                    .map(|i| {
                        if axes.contains(&i) {
                            1
                        } else {
                            *it.next().unwrap_or(&1)
                        }
                    })
                    .collect();
                self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![xv], outs)?;
            }
            "Transpose" => {
                let xv = x(0)?;
                let r = self.ty(xv).rank();
                let perm = n
                    .ints("perm")
                    .unwrap_or_else(|| (0..r as i64).rev().collect());
                self.emit(
                    n,
                    Op::Transpose,
                    Attrs::new().with("perm", A::Ints(perm)),
                    vec![xv],
                    outs,
                )?;
            }
            "Concat" => {
                let inputs: Vec<ValueId> = (0..n.p.input.len()).map(&x).collect::<R<_>>()?;
                let r = self.ty(inputs[0]).rank() as i64;
                // Concat-1 defaults the axis to 1; from opset 4 it is required.
                let axis = match n.attr("axis").and_then(|a| a.i) {
                    Some(a) => a,
                    None if opset < 4 => 1,
                    None => return Err(n.err(Code::BadAttribute, "Concat needs attribute 'axis'")),
                };
                let axis = norm_axis(n, axis, r)?;
                self.emit(
                    n,
                    Op::Concat,
                    Attrs::new().with("axis", A::Int(axis as i64)),
                    inputs,
                    outs,
                )?;
            }
            "Split" => {
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let axis = norm_axis(n, n.int("axis", 0)?, ty.rank() as i64)?;
                let dim = ty.shape[axis];
                let given = if opset >= 13 || (opset < 2 && n.input(1).is_some()) {
                    // Split-1 takes the sizes as an attribute or as a second input.
                    self.const_ints(n, 1, "split")?
                } else {
                    n.ints("split")
                };
                let nout = n.p.output.len().max(1);
                let split: Vec<i64> = match given.filter(|s| !s.is_empty()) {
                    Some(s) => s,
                    None => {
                        let parts = match n.attr("num_outputs").and_then(|a| a.i) {
                            Some(k) if k > 0 => k as usize,
                            _ => nout,
                        };
                        let chunk = dim.div_ceil(parts);
                        let mut left = dim;
                        (0..parts)
                            .map(|_| {
                                let c = chunk.min(left);
                                left -= c;
                                c as i64
                            })
                            .collect()
                    }
                };
                let a = Attrs::new()
                    .with("axis", A::Int(axis as i64))
                    .with("split", A::Ints(split));
                let outs_all: Vec<String> = n.p.output.clone();
                self.emit(n, Op::Split, a, vec![xv], &outs_all)?;
            }
            "Slice" => {
                let xv = x(0)?;
                let ty = self.ty(xv).clone();
                let (starts, ends, axes, steps) = if opset < 10 {
                    (
                        n.ints("starts").unwrap_or_default(),
                        n.ints("ends").unwrap_or_default(),
                        n.ints("axes"),
                        None,
                    )
                } else {
                    (
                        self.const_ints(n, 1, "starts")?.unwrap_or_default(),
                        self.const_ints(n, 2, "ends")?.unwrap_or_default(),
                        self.const_ints(n, 3, "axes")?,
                        self.const_ints(n, 4, "steps")?,
                    )
                };
                let a = canonical_slice(
                    n,
                    &ty.shape,
                    &starts,
                    &ends,
                    axes.as_deref(),
                    steps.as_deref(),
                )?;
                self.emit(n, Op::Slice, a, vec![xv], outs)?;
            }
            "Expand" => {
                let xv = x(0)?;
                let target = self.const_ints(n, 1, "shape")?.unwrap_or_default();
                let target: Vec<usize> = target.iter().map(|&d| d.max(0) as usize).collect();
                let shape = broadcast_shapes(&self.ty(xv).shape, &target).ok_or_else(|| {
                    n.err(
                        Code::ShapeMismatch,
                        format!("Expand of {} to {target:?}: not broadcastable", self.ty(xv)),
                    )
                })?;
                self.emit(n, Op::Expand, reshape_attrs(&shape), vec![xv], outs)?;
            }
            "Tile" => {
                if opset < 6 {
                    return Err(n
                        .err(
                            Code::UnsupportedOp,
                            "Tile-1 (opset < 6: `tiles` and `axis` inputs) is not supported",
                        )
                        .help(
                            "convert the model to opset 6 or later (Tile with a `repeats` input)",
                        ));
                }
                let xv = x(0)?;
                let reps = self.const_ints(n, 1, "repeats")?.unwrap_or_default();
                self.emit(
                    n,
                    Op::Tile,
                    Attrs::new().with("repeats", A::Ints(reps)),
                    vec![xv],
                    outs,
                )?;
            }
            "Gather" => {
                let xv = x(0)?;
                let axis = norm_axis(n, n.int("axis", 0)?, self.ty(xv).rank() as i64)?;
                self.emit(
                    n,
                    Op::Gather,
                    Attrs::new().with("axis", A::Int(axis as i64)),
                    vec![xv, x(1)?],
                    outs,
                )?;
            }
            "GatherND" => {
                let a = Attrs::new().with("batch_dims", A::Int(n.int("batch_dims", 0)?));
                self.emit(n, Op::GatherND, a, vec![x(0)?, x(1)?], outs)?;
            }
            "Pad" => {
                let xv = x(0)?;
                let r = self.ty(xv).rank();
                let (pads, value, axes) = if opset < 11 {
                    (
                        // Pad-1 spells the attribute `paddings`.
                        n.ints(if opset < 2 { "paddings" } else { "pads" })
                            .unwrap_or_default(),
                        n.float("value", 0.0)?,
                        None,
                    )
                } else {
                    let pads = self.const_ints(n, 1, "pads")?.unwrap_or_default();
                    let value = self
                        .const_floats(n, 2, "constant_value")?
                        .and_then(|v| v.first().copied())
                        .unwrap_or(0.0);
                    (pads, value, self.const_ints(n, 3, "axes")?)
                };
                let full = match axes {
                    None => pads,
                    Some(ax) => {
                        let ax = norm_axes(n, &ax, r as i64)?;
                        if pads.len() != 2 * ax.len() {
                            return Err(n.err(
                                Code::BadAttribute,
                                format!("Pad has {} pads for {} axes", pads.len(), ax.len()),
                            ));
                        }
                        let mut full = vec![0; 2 * r];
                        for (k, &a) in ax.iter().enumerate() {
                            full[a] = pads[k];
                            full[a + r] = pads[k + ax.len()];
                        }
                        full
                    }
                };
                let a = Attrs::new()
                    .with("pads", A::Ints(full))
                    .with("mode", A::Str(n.string("mode", "constant")?))
                    .with("value", A::Float(value));
                self.emit(n, Op::Pad, a, vec![xv], outs)?;
            }
            "Resize" => self.resize(n, outs)?,
            other => return Err(n.err(Code::UnsupportedOp, format!("op {other} is not supported"))),
        }
        Ok(())
    }

    /// Binary ops before opset 7: without `broadcast=1` both operands have the same shape;
    /// with it, B is broadcast onto A, aligned at A's dim `axis` when given (else at A's
    /// trailing dims, as numpy does). B is reshaped so numpy broadcasting gives that result.
    fn legacy_broadcast(&mut self, n: &N, outs: &[String]) -> R<()> {
        let op = Op::from_name(&n.op).ok_or_else(|| n.err(Code::UnsupportedOp, "no graph op"))?;
        let (a, b) = (n.req(0)?, n.req(1)?);
        let (at, bt) = (self.ty(a).clone(), self.ty(b).clone());
        let mut b2 = b;
        if n.int("broadcast", 0)? == 0 {
            if at.shape != bt.shape {
                return Err(n.err(
                    Code::ShapeMismatch,
                    format!("{} without broadcast=1 (opset < 7) needs operands of one shape, got {at} and {bt}", n.op),
                )
                .help("set broadcast=1 on the node or convert the model to opset 7 or later"));
            }
        } else if let Some(axis) = n.attr("axis").and_then(|x| x.i) {
            let ra = at.rank() as i64;
            let axis = if axis < 0 { axis + ra } else { axis };
            let fits = axis >= 0
                && axis as usize + bt.rank() <= at.rank()
                && bt
                    .shape
                    .iter()
                    .zip(&at.shape[axis as usize..])
                    .all(|(&d, &e)| d == e || d == 1);
            if !fits {
                return Err(n.err(
                    Code::ShapeMismatch,
                    format!(
                        "{} broadcast of {bt} onto {at} at axis {axis} does not fit",
                        n.op
                    ),
                ));
            }
            let trailing = at.rank() - axis as usize - bt.rank();
            if trailing > 0 {
                let mut shape = bt.shape.clone();
                shape.extend(std::iter::repeat_n(1, trailing));
                let name = self.aux(n, "b_aligned");
                b2 = self.emit(n, Op::Reshape, reshape_attrs(&shape), vec![b], &[name])?[0];
            }
        }
        self.emit(n, op, Attrs::new(), vec![a, b2], outs)?;
        Ok(())
    }

    fn constant_attr(&self, n: &N) -> R<Tensor> {
        let scalar = |dt: DType, shape: &[usize], v: Vec<f32>| Tensor::from_f32(dt, shape, &v);
        if let Some(t) = n.attr("value").and_then(|a| a.t.as_ref()) {
            return tensor_from_proto(t, self.ext).map_err(|d| d.at_node(&n.name, &n.op));
        }
        if let Some(f) = n.attr("value_float").and_then(|a| a.f) {
            return Ok(scalar(DType::F32, &[], vec![f]));
        }
        if let Some(v) = n.floats("value_floats") {
            return Ok(scalar(DType::F32, &[v.len()], v));
        }
        if let Some(i) = n.attr("value_int").and_then(|a| a.i) {
            return Ok(Tensor::I64(ndarray::arr0(i).into_dyn()));
        }
        if let Some(v) = n.ints("value_ints") {
            return Ok(Tensor::I64(ndarray::Array1::from(v).into_dyn()));
        }
        Err(n.err(Code::BadAttribute, "Constant needs a value, value_float(s) or value_int(s) attribute (strings and sparse tensors are not supported)"))
    }

    /// Resolves kernel_shape/strides/dilations/pads (with auto_pad) for Conv, ConvTranspose and pools.
    fn spatial(&self, n: &N, x: &TensorType, kernel: Vec<usize>, transposed: bool) -> R<Attrs> {
        let nsp = x.rank().saturating_sub(2);
        if kernel.len() != nsp {
            return Err(n.err(
                Code::ShapeMismatch,
                format!("kernel {kernel:?} does not fit input {x}"),
            ));
        }
        let get = |k: &str, def: usize| -> R<Vec<usize>> {
            match n.ints(k) {
                None => Ok(vec![def; nsp]),
                Some(v) if v.len() == nsp && v.iter().all(|&s| s > 0) => {
                    Ok(v.iter().map(|&s| s as usize).collect())
                }
                Some(v) => Err(n.err(
                    Code::BadAttribute,
                    format!("attribute '{k}' {v:?} does not fit {nsp} spatial dims"),
                )),
            }
        };
        let strides = get("strides", 1)?;
        let dil = get("dilations", 1)?;
        let auto = n.string("auto_pad", "NOTSET")?;
        let mut pads: Vec<i64> = match n.ints("pads") {
            Some(p) if p.len() == 2 * nsp => p,
            Some(p) if !p.is_empty() => {
                return Err(n.err(
                    Code::BadAttribute,
                    format!("pads {p:?} need 2 entries per spatial dim ({nsp})"),
                ));
            }
            _ => vec![0; 2 * nsp],
        };
        let mut out_padding = vec![0i64; nsp];
        if transposed {
            out_padding = n.ints("output_padding").unwrap_or_else(|| vec![0; nsp]);
            if out_padding.len() != nsp {
                return Err(n.err(
                    Code::BadAttribute,
                    "output_padding does not fit the spatial dims",
                ));
            }
            let output_shape = n.ints("output_shape");
            if output_shape.is_some() || matches!(auto.as_str(), "SAME_UPPER" | "SAME_LOWER") {
                for i in 0..nsp {
                    let inp = x.shape[2 + i] as i64;
                    let want = match &output_shape {
                        Some(os) => *os.get(os.len().wrapping_sub(nsp) + i).ok_or_else(|| {
                            n.err(Code::BadAttribute, "output_shape does not fit")
                        })?,
                        None => inp * strides[i] as i64,
                    };
                    let total = strides[i] as i64 * (inp - 1)
                        + out_padding[i]
                        + ((kernel[i] as i64 - 1) * dil[i] as i64 + 1)
                        - want;
                    // A negative total (output_shape beyond the full output) gives negative pads.
                    let half = total.div_euclid(2);
                    let (b, e) = if auto == "SAME_UPPER" {
                        (half, total - half)
                    } else {
                        (total - half, half)
                    };
                    pads[i] = b;
                    pads[i + nsp] = e;
                }
            }
        } else {
            match auto.as_str() {
                "NOTSET" => {}
                "VALID" => pads = vec![0; 2 * nsp],
                "SAME_UPPER" | "SAME_LOWER" => {
                    for i in 0..nsp {
                        let inp = x.shape[2 + i] as i64;
                        let s = strides[i] as i64;
                        let out = (inp + s - 1) / s;
                        let eff = (kernel[i] as i64 - 1) * dil[i] as i64 + 1;
                        let total = ((out - 1) * s + eff - inp).max(0);
                        let (b, e) = if auto == "SAME_UPPER" {
                            (total / 2, total - total / 2)
                        } else {
                            (total - total / 2, total / 2)
                        };
                        pads[i] = b;
                        pads[i + nsp] = e;
                    }
                }
                other => {
                    return Err(n.err(Code::BadAttribute, format!("unknown auto_pad '{other}'")))
                }
            }
        }
        if !transposed && pads.iter().any(|&p| p < 0) {
            return Err(n.err(Code::BadAttribute, format!("negative pads {pads:?}")));
        }
        let to = |v: &[usize]| A::Ints(v.iter().map(|&u| u as i64).collect());
        let mut a = Attrs::new()
            .with("kernel_shape", to(&kernel))
            .with("strides", to(&strides))
            .with("dilations", to(&dil))
            .with("pads", A::Ints(pads));
        if transposed {
            a.set("output_padding", A::Ints(out_padding));
        }
        Ok(a)
    }

    fn conv(&mut self, n: &N, outs: &[String]) -> R<()> {
        let (xv, wv) = (n.req(0)?, n.req(1)?);
        let (xt, wt) = (self.ty(xv).clone(), self.ty(wv).clone());
        if wt.rank() < 3 || xt.rank() != wt.rank() {
            return Err(n.err(
                Code::ShapeMismatch,
                format!(
                    "{} needs X and W of equal rank >= 3, got {xt} and {wt}",
                    n.op
                ),
            ));
        }
        let kernel = match n.ints("kernel_shape") {
            Some(k) => k.iter().map(|&d| d.max(0) as usize).collect(),
            None => wt.shape[2..].to_vec(),
        };
        let transposed = n.op == "ConvTranspose";
        let mut a = self.spatial(n, &xt, kernel, transposed)?;
        a.set("group", A::Int(n.int("group", 1)?));
        let mut inputs = vec![xv, wv];
        inputs.extend(n.input(2));
        let op = if transposed {
            Op::ConvTranspose
        } else {
            Op::Conv
        };
        self.emit(n, op, a, inputs, outs)?;
        Ok(())
    }

    fn pool(&mut self, n: &N, outs: &[String]) -> R<()> {
        let xv = n.req(0)?;
        let xt = self.ty(xv).clone();
        let kernel = n.ints("kernel_shape").ok_or_else(|| {
            n.err(
                Code::BadAttribute,
                format!("{} needs attribute 'kernel_shape'", n.op),
            )
        })?;
        let kernel = kernel.iter().map(|&d| d.max(1) as usize).collect();
        let mut a = self.spatial(n, &xt, kernel, false)?;
        a.set("ceil_mode", A::Int(n.int("ceil_mode", 0)?));
        let op = match n.op.as_str() {
            "MaxPool" => {
                // storage_order only orders the Indices output.
                if outs.len() > 1 {
                    a.set("num_outputs", A::Int(2));
                    a.set("storage_order", A::Int(n.int("storage_order", 0)?));
                }
                Op::MaxPool
            }
            "LpPool" => {
                a.set("p", A::Int(n.int("p", 2)?));
                Op::LpPool
            }
            _ => {
                a.set("count_include_pad", A::Int(n.int("count_include_pad", 0)?));
                Op::AveragePool
            }
        };
        self.emit(n, op, a, vec![xv], outs)?;
        Ok(())
    }

    fn resize(&mut self, n: &N, outs: &[String]) -> R<()> {
        let xv = n.req(0)?;
        let xt = self.ty(xv).clone();
        let r = xt.rank();
        let opset = self.opset;
        let (scales, sizes) = if opset < 11 {
            (self.const_floats(n, 1, "scales")?, None)
        } else {
            (
                self.const_floats(n, 2, "scales")?.filter(|s| !s.is_empty()),
                self.const_ints(n, 3, "sizes")?.filter(|s| !s.is_empty()),
            )
        };
        let mode = n.string("mode", "nearest")?;
        if !matches!(mode.as_str(), "nearest" | "linear" | "cubic") {
            return Err(n.err(
                Code::BadAttribute,
                format!("Resize mode '{mode}' is unknown (nearest, linear, cubic)"),
            ));
        }
        let ctm = n.string(
            "coordinate_transformation_mode",
            if opset < 11 {
                "asymmetric"
            } else {
                "half_pixel"
            },
        )?;
        // `axes` keeps its order: scales, sizes and roi list values in that order.
        let axes: Vec<usize> = match n.ints("axes") {
            Some(a) => {
                let v = a
                    .iter()
                    .map(|&x| norm_axis(n, x, r as i64))
                    .collect::<R<Vec<_>>>()?;
                let mut sorted = v.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(n.err(Code::BadAttribute, format!("axes {a:?} repeat an axis")));
                }
                v
            }
            None => (0..r).collect(),
        };
        let roi = if ctm == "tf_crop_and_resize" {
            let given = if opset < 11 {
                None
            } else {
                self.const_floats(n, 1, "roi")?.filter(|v| !v.is_empty())
            };
            let given = given.ok_or_else(|| {
                n.err(
                    Code::BadAttribute,
                    "Resize with tf_crop_and_resize needs a roi input",
                )
            })?;
            let k = axes.len();
            if given.len() != 2 * k {
                return Err(n.err(
                    Code::ShapeMismatch,
                    format!("Resize roi {given:?} needs 2 values per resized axis ({k})"),
                ));
            }
            let mut full = vec![0.0f32; r];
            full.extend(std::iter::repeat_n(1.0f32, r));
            for (j, &ax) in axes.iter().enumerate() {
                full[ax] = given[j];
                full[r + ax] = given[k + j];
            }
            Some(full)
        } else {
            None
        };
        let antialias = n.int("antialias", 0)?;
        let mut full_scales = vec![1.0f32; r];
        let mut full_sizes = xt.shape.clone();
        match (scales, sizes) {
            (_, Some(sz)) => {
                if sz.len() != axes.len() {
                    return Err(n.err(
                        Code::ShapeMismatch,
                        format!("Resize sizes {sz:?} do not fit {} axes", axes.len()),
                    ));
                }
                let policy = n.string("keep_aspect_ratio_policy", "stretch")?;
                let ratios: Vec<f32> = axes
                    .iter()
                    .zip(&sz)
                    .map(|(&a, &s)| s as f32 / xt.shape[a].max(1) as f32)
                    .collect();
                let common = match policy.as_str() {
                    "stretch" => None,
                    "not_larger" => ratios.iter().copied().reduce(f32::min),
                    "not_smaller" => ratios.iter().copied().reduce(f32::max),
                    p => {
                        return Err(n.err(
                            Code::BadAttribute,
                            format!("unknown keep_aspect_ratio_policy '{p}'"),
                        ))
                    }
                };
                for (k, &a) in axes.iter().enumerate() {
                    let s = common.unwrap_or(ratios[k]);
                    full_scales[a] = s;
                    full_sizes[a] = match common {
                        None => sz[k].max(0) as usize,
                        Some(c) => (c * xt.shape[a] as f32).round() as usize,
                    };
                }
            }
            (Some(sc), None) => {
                if sc.len() != axes.len() {
                    return Err(n.err(
                        Code::ShapeMismatch,
                        format!("Resize scales {sc:?} do not fit {} axes", axes.len()),
                    ));
                }
                for (k, &a) in axes.iter().enumerate() {
                    if sc[k] <= 0.0 {
                        return Err(n.err(
                            Code::BadAttribute,
                            format!("Resize scale {} must be positive", sc[k]),
                        ));
                    }
                    full_scales[a] = sc[k];
                    full_sizes[a] = (xt.shape[a] as f32 * sc[k]).floor() as usize;
                }
            }
            (None, None) => return Err(n.err(Code::BadAttribute, "Resize needs scales or sizes")),
        }
        let a = Attrs::new()
            .with("mode", A::Str(mode))
            .with("coordinate_transformation_mode", A::Str(ctm))
            .with(
                "nearest_mode",
                A::Str(n.string("nearest_mode", "round_prefer_floor")?),
            )
            .with("scales", A::Floats(full_scales))
            .with(
                "sizes",
                A::Ints(full_sizes.iter().map(|&s| s as i64).collect()),
            )
            .with("cubic_coeff_a", A::Float(n.float("cubic_coeff_a", -0.75)?))
            .with("exclude_outside", A::Int(n.int("exclude_outside", 0)?))
            .with(
                "extrapolation_value",
                A::Float(n.float("extrapolation_value", 0.0)?),
            );
        let mut a = a;
        if antialias != 0 {
            a.set("antialias", A::Int(antialias));
        }
        if let Some(roi) = roi {
            a.set("roi", A::Floats(roi));
        }
        self.emit(n, Op::Resize, a, vec![xv], outs)?;
        Ok(())
    }
}

/// ONNX element-type code of a Cast-1 `to` string.
fn legacy_type_code(name: &str) -> Option<i32> {
    Some(match name.to_ascii_uppercase().as_str() {
        "FLOAT" => 1,
        "INT32" => 6,
        "INT64" => 7,
        "BOOL" => 9,
        "FLOAT16" => 10,
        "BFLOAT16" => 16,
        _ => return None,
    })
}

fn reshape_attrs(shape: &[usize]) -> Attrs {
    Attrs::new().with("shape", A::Ints(shape.iter().map(|&d| d as i64).collect()))
}

fn norm_axis(n: &N, axis: i64, rank: i64) -> R<usize> {
    let a = if axis < 0 { axis + rank } else { axis };
    if a < 0 || a >= rank.max(1) {
        return Err(n.err(
            Code::BadAttribute,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

fn norm_axes(n: &N, axes: &[i64], rank: i64) -> R<Vec<usize>> {
    let mut v = axes
        .iter()
        .map(|&a| norm_axis(n, a, rank))
        .collect::<R<Vec<_>>>()?;
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(n.err(Code::BadAttribute, format!("axes {axes:?} repeat an axis")));
    }
    Ok(v)
}

/// ONNX Slice bounds -> one clamped (start, end, step) per dim.
fn canonical_slice(
    n: &N,
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> R<Attrs> {
    let r = shape.len();
    if starts.len() != ends.len() {
        return Err(n.err(Code::BadAttribute, "Slice starts and ends differ in length"));
    }
    let axes: Vec<i64> = axes
        .map(|a| a.to_vec())
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps: Vec<i64> = steps
        .map(|s| s.to_vec())
        .unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(n.err(
            Code::BadAttribute,
            "Slice axes/steps differ in length from starts",
        ));
    }
    let mut cs: Vec<i64> = vec![0; r];
    let mut ce: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut cst: Vec<i64> = vec![1; r];
    let mut seen = vec![false; r];
    for k in 0..starts.len() {
        let a = norm_axis(n, axes[k], r as i64)?;
        if seen[a] {
            return Err(n.err(Code::BadAttribute, format!("Slice axis {a} repeated")));
        }
        seen[a] = true;
        let d = shape[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(n.err(Code::BadAttribute, "Slice step must not be 0"));
        }
        let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, e) = (fix(starts[k]), fix(ends[k]));
        let (s, e) = if step > 0 {
            (s.clamp(0, d), e.clamp(0, d))
        } else {
            (s.clamp(0, (d - 1).max(0)), e.clamp(-1, (d - 1).max(-1)))
        };
        let s = if step < 0 && d == 0 { -1 } else { s };
        cs[a] = s;
        ce[a] = e;
        cst[a] = step;
    }
    Ok(Attrs::new()
        .with("starts", A::Ints(cs))
        .with("ends", A::Ints(ce))
        .with("steps", A::Ints(cst)))
}
