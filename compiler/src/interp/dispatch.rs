//! The graph-level interpreter: runs a [`Graph`] node by node in program order, mapping each
//! op and its canonical attributes (documented on [`Op`]) onto the kernels of this module,
//! and checks every produced value against the type the graph declares for it.

use super::conv::{conv, conv_transpose, ConvParams, ConvTransposeParams};
use super::elementwise::{
    binary, cast, celu, clip, compare, elu, gelu, hard_sigmoid, hard_swish, is_inf, is_nan,
    leaky_relu, logical, not, prelu, selu, shrink, swish, thresholded_relu, unary, variadic,
    where_, BinaryOp, CompareOp, GeluApprox, LogicOp, UnaryOp, VariadicOp,
};
use super::index_ops::{gather, gather_elements, gather_nd, trilu};
use super::linalg::{gemm, matmul, GemmParams};
use super::normalize::{
    batch_norm, hardmax, instance_norm, layer_norm, log_softmax, lrn, softmax, LrnParams,
};
use super::pool::{average_pool, global_pool, lp_pool, max_pool, GlobalPool, PoolParams};
use super::reduce::{arg_reduce, cumsum, reduce, ReduceOp, ReduceParams};
use super::resize::{resize_explicit, CoordMode, NearestMode, ResizeMode, ResizeParams};
use super::shape_ops::{
    concat, depth_to_space, expand, pad, reshape, slice, space_to_depth, split, tile, transpose,
    PadMode,
};
use super::value::{InterpError, Result};
use crate::graph::{Attrs, FusedAct, Graph, Op, TensorType, ValueDef, ValueId};
use crate::tensor::{DType, Tensor};
use std::borrow::Cow;
use std::collections::HashMap;

/// Reads canonical attributes, turning a missing or mistyped one into an [`InterpError`].
struct A<'a> {
    op: &'a str,
    attrs: &'a Attrs,
}

impl A<'_> {
    fn e(&self, m: String) -> InterpError {
        InterpError::new(self.op, m)
    }
    fn int(&self, n: &str) -> Result<i64> {
        self.attrs.int(n).map_err(|m| self.e(m))
    }
    fn int_or(&self, n: &str, d: i64) -> Result<i64> {
        if self.attrs.get(n).is_none() {
            return Ok(d);
        }
        self.int(n)
    }
    fn float(&self, n: &str) -> Result<f32> {
        self.attrs.float(n).map_err(|m| self.e(m))
    }
    fn float_or(&self, n: &str, d: f32) -> Result<f32> {
        if self.attrs.get(n).is_none() {
            return Ok(d);
        }
        self.float(n)
    }
    fn opt_float(&self, n: &str) -> Result<Option<f32>> {
        self.attrs.opt_float(n).map_err(|m| self.e(m))
    }
    fn str_or<'s>(&'s self, n: &str, d: &'s str) -> Result<&'s str> {
        if self.attrs.get(n).is_none() {
            return Ok(d);
        }
        self.attrs.str(n).map_err(|m| self.e(m))
    }
    fn ints(&self, n: &str) -> Result<Vec<i64>> {
        self.attrs
            .ints(n)
            .map(|v| v.to_vec())
            .map_err(|m| self.e(m))
    }
    fn ints_or_empty(&self, n: &str) -> Result<Vec<i64>> {
        if self.attrs.get(n).is_none() {
            return Ok(vec![]);
        }
        self.ints(n)
    }
    fn usizes_or_empty(&self, n: &str) -> Result<Vec<usize>> {
        if self.attrs.get(n).is_none() {
            return Ok(vec![]);
        }
        self.attrs.usizes(n).map_err(|m| self.e(m))
    }
    fn floats(&self, n: &str) -> Result<Vec<f32>> {
        self.attrs
            .floats(n)
            .map(|v| v.to_vec())
            .map_err(|m| self.e(m))
    }
    fn dtype(&self, n: &str) -> Result<DType> {
        self.attrs.dtype(n).map_err(|m| self.e(m))
    }
}

fn arity(op: &str, ins: &[&Tensor], min: usize, max: usize) -> Result<()> {
    if ins.len() < min || ins.len() > max {
        return Err(InterpError::new(
            op,
            format!("takes {min}..={max} inputs, got {}", ins.len()),
        ));
    }
    Ok(())
}

fn scalar_like(x: &Tensor, v: f32) -> Tensor {
    cast(&Tensor::from_f32(DType::F32, &[], &[v]), x.dtype())
}

fn one(t: Tensor) -> Result<Vec<Tensor>> {
    Ok(vec![t])
}

/// The activation of a fused op.
fn apply_fused_act(act: FusedAct, y: Tensor) -> Result<Tensor> {
    Ok(match act {
        FusedAct::None => y,
        FusedAct::Relu => unary(UnaryOp::Relu, &y)?,
        FusedAct::Sigmoid => unary(UnaryOp::Sigmoid, &y)?,
        FusedAct::Silu => swish(&y, 1.0)?,
        FusedAct::Tanh => unary(UnaryOp::Tanh, &y)?,
        FusedAct::Gelu => gelu(&y, GeluApprox::None)?,
        FusedAct::GeluTanh => gelu(&y, GeluApprox::Tanh)?,
    })
}

/// Runs one op on its operands with canonical attributes; returns `n_outputs` results.
/// This is the whole mapping from the graph IR to the kernels, usable on its own (e.g. to
/// evaluate both sides of a rewrite rule).
pub fn run_op(op: Op, attrs: &Attrs, ins: &[&Tensor], n_outputs: usize) -> Result<Vec<Tensor>> {
    let name = op.name();
    let a = A { op: name, attrs };
    use Op::*;
    let un = |u: UnaryOp| -> Result<Vec<Tensor>> {
        arity(name, ins, 1, 1)?;
        one(unary(u, ins[0])?)
    };
    let bin = |b: BinaryOp| -> Result<Vec<Tensor>> {
        arity(name, ins, 2, 2)?;
        one(binary(b, ins[0], ins[1])?)
    };
    let cmp = |c: CompareOp| -> Result<Vec<Tensor>> {
        arity(name, ins, 2, 2)?;
        one(compare(c, ins[0], ins[1])?)
    };
    let logic = |l: LogicOp| -> Result<Vec<Tensor>> {
        arity(name, ins, 2, 2)?;
        one(logical(l, ins[0], ins[1])?)
    };
    let red = |r: ReduceOp| -> Result<Vec<Tensor>> {
        arity(name, ins, 1, 1)?;
        let p = ReduceParams {
            axes: Some(a.ints("axes")?),
            keepdims: a.int_or("keepdims", 1)? != 0,
            noop_with_empty_axes: false,
        };
        one(reduce(r, ins[0], &p)?)
    };
    let pool_params = || -> Result<PoolParams> {
        Ok(PoolParams {
            kernel_shape: a.usizes_or_empty("kernel_shape")?,
            strides: a.usizes_or_empty("strides")?,
            pads: a.usizes_or_empty("pads")?,
            dilations: a.usizes_or_empty("dilations")?,
            ceil_mode: a.int_or("ceil_mode", 0)? != 0,
            count_include_pad: a.int_or("count_include_pad", 0)? != 0,
            storage_order: a.int_or("storage_order", 0)?,
            p: a.int_or("p", 2)? as f32,
            ..Default::default()
        })
    };
    let conv_params = || -> Result<ConvParams> {
        Ok(ConvParams {
            kernel_shape: a.usizes_or_empty("kernel_shape")?,
            strides: a.usizes_or_empty("strides")?,
            pads: a.usizes_or_empty("pads")?,
            dilations: a.usizes_or_empty("dilations")?,
            group: a.int_or("group", 1)?.max(1) as usize,
            ..Default::default()
        })
    };
    let mut out = match op {
        Conv => {
            arity(name, ins, 2, 3)?;
            one(conv(ins[0], ins[1], ins.get(2).copied(), &conv_params()?)?)
        }
        FusedConv => {
            let res_mode = a.int_or("residual", 0)?;
            let residual = res_mode != 0;
            arity(
                name,
                ins,
                2 + usize::from(residual),
                3 + usize::from(residual),
            )?;
            let n_conv = ins.len() - usize::from(residual);
            let act = a.str_or("activation", "none")?;
            let act =
                FusedAct::parse(act).ok_or_else(|| a.e(format!("unknown activation '{act}'")))?;
            let mut y = conv(
                ins[0],
                ins[1],
                ins.get(2).filter(|_| n_conv == 3).copied(),
                &conv_params()?,
            )?;
            if res_mode == 1 {
                y = binary(BinaryOp::Add, &y, ins[n_conv])?;
            }
            let y = apply_fused_act(act, y)?;
            one(if res_mode == 2 {
                binary(BinaryOp::Add, &y, ins[n_conv])?
            } else {
                y
            })
        }
        ConvTranspose => {
            arity(name, ins, 2, 3)?;
            let pads = a.ints_or_empty("pads")?;
            let p = ConvTransposeParams {
                kernel_shape: a.usizes_or_empty("kernel_shape")?,
                strides: a.usizes_or_empty("strides")?,
                pads: pads.iter().map(|&p| p.max(0) as usize).collect(),
                signed_pads: pads.iter().any(|&p| p < 0).then_some(pads),
                dilations: a.usizes_or_empty("dilations")?,
                group: a.int_or("group", 1)?.max(1) as usize,
                output_padding: a.usizes_or_empty("output_padding")?,
                ..Default::default()
            };
            one(conv_transpose(ins[0], ins[1], ins.get(2).copied(), &p)?)
        }
        MatMul => {
            arity(name, ins, 2, 2)?;
            // The optimizer's layout attributes (graph IR only): transposes of the operands
            // and of the result (see opt/rules/layout.rs).
            let perm = |n: &str| -> Result<Option<Vec<i64>>> {
                attrs.get(n).map(|_| a.ints(n)).transpose()
            };
            let view = |x: &Tensor, n: &str| -> Result<Tensor> {
                match perm(n)? {
                    Some(p) => transpose(x, Some(&p)),
                    None => Ok(x.clone()),
                }
            };
            let mut y = matmul(&view(ins[0], "perm_a")?, &view(ins[1], "perm_b")?)?;
            if attrs.get("alpha").is_some() {
                // `alpha` (graph IR only) scales the product as a following Mul would.
                let alpha = Tensor::from_f32(y.dtype(), &[], &[a.float("alpha")?]);
                y = binary(BinaryOp::Mul, &y, &alpha)?;
            }
            one(view(&y, "perm_y")?)
        }
        FusedGemm => {
            let res_mode = a.int_or("residual", 0)?;
            let n_gemm = ins.len() - usize::from(res_mode != 0 && !ins.is_empty());
            let mut y = run_op(Gemm, attrs, &ins[..n_gemm], 1)?.remove(0);
            let act = a.str_or("activation", "none")?;
            let act =
                FusedAct::parse(act).ok_or_else(|| a.e(format!("unknown activation '{act}'")))?;
            if res_mode == 1 {
                y = binary(BinaryOp::Add, &y, ins[n_gemm])?;
            }
            let y = apply_fused_act(act, y)?;
            one(if res_mode == 2 {
                binary(BinaryOp::Add, &y, ins[n_gemm])?
            } else {
                y
            })
        }
        Gemm => {
            arity(name, ins, 2, 3)?;
            let p = GemmParams {
                alpha: a.float_or("alpha", 1.0)?,
                beta: a.float_or("beta", 1.0)?,
                trans_a: a.int_or("transA", 0)? != 0,
                trans_b: a.int_or("transB", 0)? != 0,
            };
            one(gemm(ins[0], ins[1], ins.get(2).copied(), &p)?)
        }
        Add => bin(BinaryOp::Add),
        Sub => bin(BinaryOp::Sub),
        Mul => bin(BinaryOp::Mul),
        Div => bin(BinaryOp::Div),
        Pow => bin(BinaryOp::Pow),
        Sqrt => un(UnaryOp::Sqrt),
        Exp => un(UnaryOp::Exp),
        Log => un(UnaryOp::Log),
        Neg => un(UnaryOp::Neg),
        Abs => un(UnaryOp::Abs),
        Reciprocal => un(UnaryOp::Reciprocal),
        Relu => un(UnaryOp::Relu),
        Sigmoid => un(UnaryOp::Sigmoid),
        Tanh => un(UnaryOp::Tanh),
        Erf => un(UnaryOp::Erf),
        Floor => un(UnaryOp::Floor),
        Ceil => un(UnaryOp::Ceil),
        Sign => un(UnaryOp::Sign),
        LeakyRelu => {
            arity(name, ins, 1, 1)?;
            one(leaky_relu(ins[0], a.float_or("alpha", 0.01)?)?)
        }
        Gelu => {
            arity(name, ins, 1, 1)?;
            let approx = match a.str_or("approximate", "none")? {
                "none" => GeluApprox::None,
                "tanh" => GeluApprox::Tanh,
                other => return Err(a.e(format!("unknown approximate '{other}'"))),
            };
            one(gelu(ins[0], approx)?)
        }
        HardSigmoid => {
            arity(name, ins, 1, 1)?;
            one(hard_sigmoid(
                ins[0],
                a.float_or("alpha", 0.2)?,
                a.float_or("beta", 0.5)?,
            )?)
        }
        HardSwish => {
            arity(name, ins, 1, 1)?;
            one(hard_swish(ins[0])?)
        }
        Clip => {
            arity(name, ins, 1, 1)?;
            let lo = a.opt_float("min")?.map(|v| scalar_like(ins[0], v));
            let hi = a.opt_float("max")?.map(|v| scalar_like(ins[0], v));
            one(clip(ins[0], lo.as_ref(), hi.as_ref())?)
        }
        Softmax => {
            arity(name, ins, 1, 1)?;
            one(softmax(ins[0], a.int_or("axis", -1)?, false)?)
        }
        LogSoftmax => {
            arity(name, ins, 1, 1)?;
            one(log_softmax(ins[0], a.int_or("axis", -1)?, false)?)
        }
        LayerNormalization => {
            arity(name, ins, 2, 3)?;
            let r = layer_norm(
                ins[0],
                ins[1],
                ins.get(2).copied(),
                a.int_or("axis", -1)?,
                a.float_or("epsilon", 1e-5)?,
            )?;
            Ok(vec![r.y, r.mean, r.inv_std_dev])
        }
        BatchNormalization => {
            arity(name, ins, 5, 5)?;
            one(batch_norm(
                ins[0],
                ins[1],
                ins[2],
                ins[3],
                ins[4],
                a.float_or("epsilon", 1e-5)?,
            )?)
        }
        ReduceSum => red(ReduceOp::Sum),
        ReduceMean => red(ReduceOp::Mean),
        ReduceMax => red(ReduceOp::Max),
        ReduceMin => red(ReduceOp::Min),
        MaxPool => {
            arity(name, ins, 1, 1)?;
            let (y, idx) = max_pool(ins[0], &pool_params()?)?;
            Ok(vec![y, idx])
        }
        AveragePool => {
            arity(name, ins, 1, 1)?;
            one(average_pool(ins[0], &pool_params()?)?)
        }
        GlobalAveragePool => {
            arity(name, ins, 1, 1)?;
            one(global_pool(GlobalPool::Average, ins[0])?)
        }
        GlobalMaxPool => {
            arity(name, ins, 1, 1)?;
            one(global_pool(GlobalPool::Max, ins[0])?)
        }
        Reshape => {
            arity(name, ins, 1, 1)?;
            one(reshape(ins[0], &a.ints("shape")?, true)?)
        }
        Transpose => {
            arity(name, ins, 1, 1)?;
            let perm = a.ints_or_empty("perm")?;
            let perm = if a.attrs.get("perm").is_none() {
                None
            } else {
                Some(&perm[..])
            };
            one(transpose(ins[0], perm)?)
        }
        Concat => one(concat(ins, a.int("axis")?)?),
        Split => {
            arity(name, ins, 1, 1)?;
            let sizes = a.ints("split")?;
            split(ins[0], a.int("axis")?, Some(&sizes), sizes.len())
        }
        Slice => {
            arity(name, ins, 1, 1)?;
            let steps = a.ints_or_empty("steps")?;
            let steps = if steps.is_empty() {
                None
            } else {
                Some(&steps[..])
            };
            let axes = a.ints_or_empty("axes")?;
            let axes = if axes.is_empty() {
                None
            } else {
                Some(&axes[..])
            };
            // Canonical end -1 with a negative step means "through index 0"; the ONNX-style
            // kernel spells that as any end below -dim.
            let ends: Vec<i64> = match steps {
                Some(st) if axes.is_none() => a
                    .ints("ends")?
                    .iter()
                    .zip(st)
                    .map(|(&e, &s)| if s < 0 && e < 0 { i64::MIN } else { e })
                    .collect(),
                _ => a.ints("ends")?,
            };
            one(slice(ins[0], &a.ints("starts")?, &ends, axes, steps)?)
        }
        Expand => {
            arity(name, ins, 1, 1)?;
            one(expand(ins[0], &a.ints("shape")?)?)
        }
        Tile => {
            arity(name, ins, 1, 1)?;
            one(tile(ins[0], &a.ints("repeats")?)?)
        }
        Gather => {
            arity(name, ins, 2, 2)?;
            one(gather(ins[0], ins[1], a.int_or("axis", 0)?)?)
        }
        GatherND => {
            arity(name, ins, 2, 2)?;
            let b = a.int_or("batch_dims", 0)?;
            if b < 0 {
                return Err(a.e(format!("batch_dims {b} is negative")));
            }
            one(gather_nd(ins[0], ins[1], b as usize)?)
        }
        Where => {
            arity(name, ins, 3, 3)?;
            one(where_(ins[0], ins[1], ins[2])?)
        }
        Equal => cmp(CompareOp::Equal),
        Less => cmp(CompareOp::Less),
        Greater => cmp(CompareOp::Greater),
        LessOrEqual => cmp(CompareOp::LessOrEqual),
        GreaterOrEqual => cmp(CompareOp::GreaterOrEqual),
        And => logic(LogicOp::And),
        Or => logic(LogicOp::Or),
        Xor => logic(LogicOp::Xor),
        Not => {
            arity(name, ins, 1, 1)?;
            one(not(ins[0])?)
        }
        IsNaN => {
            arity(name, ins, 1, 1)?;
            one(is_nan(ins[0])?)
        }
        IsInf => {
            arity(name, ins, 1, 1)?;
            one(is_inf(
                ins[0],
                a.int_or("detect_positive", 1)? != 0,
                a.int_or("detect_negative", 1)? != 0,
            )?)
        }
        Cast => {
            arity(name, ins, 1, 1)?;
            one(cast(ins[0], a.dtype("to")?))
        }
        Identity => {
            arity(name, ins, 1, 1)?;
            one(ins[0].clone())
        }
        Resize => {
            arity(name, ins, 1, 1)?;
            let mode = a.str_or("mode", "nearest")?;
            let coord = a.str_or("coordinate_transformation_mode", "half_pixel")?;
            let nearest = a.str_or("nearest_mode", "round_prefer_floor")?;
            let p = ResizeParams {
                mode: ResizeMode::parse(mode)
                    .ok_or_else(|| a.e(format!("unknown mode '{mode}'")))?,
                coord: CoordMode::parse(coord).ok_or_else(|| {
                    a.e(format!("unknown coordinate_transformation_mode '{coord}'"))
                })?,
                nearest: NearestMode::parse(nearest)
                    .ok_or_else(|| a.e(format!("unknown nearest_mode '{nearest}'")))?,
                cubic_coeff_a: a.float_or("cubic_coeff_a", -0.75)?,
                exclude_outside: a.int_or("exclude_outside", 0)? != 0,
                extrapolation_value: a.float_or("extrapolation_value", 0.0)?,
                antialias: a.int_or("antialias", 0)? != 0,
                ..Default::default()
            };
            let sizes = a.usizes_or_empty("sizes")?;
            let roi = if a.attrs.get("roi").is_some() {
                Some(a.floats("roi")?)
            } else {
                None
            };
            one(resize_explicit(
                ins[0],
                roi.as_deref(),
                &a.floats("scales")?,
                &sizes,
                &p,
            )?)
        }
        Pad => {
            arity(name, ins, 1, 1)?;
            let mode = a.str_or("mode", "constant")?;
            let m = PadMode::parse(mode).ok_or_else(|| a.e(format!("unknown mode '{mode}'")))?;
            let v = scalar_like(ins[0], a.float_or("value", 0.0)?);
            one(pad(ins[0], &a.ints("pads")?, m, Some(&v), None)?)
        }
        Sum => one(variadic(VariadicOp::Sum, ins)?),
        Max => one(variadic(VariadicOp::Max, ins)?),
        Min => one(variadic(VariadicOp::Min, ins)?),
        Elu => {
            arity(name, ins, 1, 1)?;
            one(elu(ins[0], a.float_or("alpha", 1.0)?)?)
        }
        Selu => {
            arity(name, ins, 1, 1)?;
            one(selu(
                ins[0],
                a.float_or("alpha", 1.673_263_2)?,
                a.float_or("gamma", 1.050_701)?,
            )?)
        }
        Celu => {
            arity(name, ins, 1, 1)?;
            one(celu(ins[0], a.float_or("alpha", 1.0)?)?)
        }
        ThresholdedRelu => {
            arity(name, ins, 1, 1)?;
            one(thresholded_relu(ins[0], a.float_or("alpha", 1.0)?)?)
        }
        Shrink => {
            arity(name, ins, 1, 1)?;
            one(shrink(
                ins[0],
                a.float_or("bias", 0.0)?,
                a.float_or("lambd", 0.5)?,
            )?)
        }
        Swish => {
            arity(name, ins, 1, 1)?;
            one(swish(ins[0], a.float_or("alpha", 1.0)?)?)
        }
        Softplus => un(UnaryOp::Softplus),
        Softsign => un(UnaryOp::Softsign),
        Round => un(UnaryOp::Round),
        Sin => un(UnaryOp::Sin),
        Cos => un(UnaryOp::Cos),
        Tan => un(UnaryOp::Tan),
        Asin => un(UnaryOp::Asin),
        Acos => un(UnaryOp::Acos),
        Atan => un(UnaryOp::Atan),
        Sinh => un(UnaryOp::Sinh),
        Cosh => un(UnaryOp::Cosh),
        Asinh => un(UnaryOp::Asinh),
        Acosh => un(UnaryOp::Acosh),
        Atanh => un(UnaryOp::Atanh),
        Mish => un(UnaryOp::Mish),
        PRelu => {
            arity(name, ins, 2, 2)?;
            one(prelu(ins[0], ins[1])?)
        }
        Mod => bin(if a.int_or("fmod", 0)? != 0 {
            BinaryOp::Fmod
        } else {
            BinaryOp::Mod
        }),
        ArgMax | ArgMin => {
            arity(name, ins, 1, 1)?;
            one(arg_reduce(
                ins[0],
                a.int_or("axis", 0)?,
                a.int_or("keepdims", 1)? != 0,
                a.int_or("select_last_index", 0)? != 0,
                op == ArgMax,
            )?)
        }
        CumSum => {
            arity(name, ins, 1, 1)?;
            one(cumsum(
                ins[0],
                a.int("axis")?,
                a.int_or("exclusive", 0)? != 0,
                a.int_or("reverse", 0)? != 0,
            )?)
        }
        GatherElements => {
            arity(name, ins, 2, 2)?;
            one(gather_elements(ins[0], ins[1], a.int_or("axis", 0)?)?)
        }
        Trilu => {
            arity(name, ins, 1, 1)?;
            one(trilu(
                ins[0],
                a.int_or("k", 0)?,
                a.int_or("upper", 1)? != 0,
            )?)
        }
        Hardmax => {
            arity(name, ins, 1, 1)?;
            one(hardmax(ins[0], a.int_or("axis", -1)?, false)?)
        }
        InstanceNormalization => {
            arity(name, ins, 3, 3)?;
            one(instance_norm(
                ins[0],
                ins[1],
                ins[2],
                a.float_or("epsilon", 1e-5)?,
            )?)
        }
        DepthToSpace | SpaceToDepth => {
            arity(name, ins, 1, 1)?;
            let b = a.int("blocksize")?;
            let b = usize::try_from(b)
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| a.e(format!("blocksize {b} must be positive")))?;
            let crd = match a.str_or("mode", "DCR")? {
                "DCR" => false,
                "CRD" => true,
                m => return Err(a.e(format!("unknown mode '{m}'"))),
            };
            if op == DepthToSpace {
                one(depth_to_space(ins[0], b, crd)?)
            } else {
                one(space_to_depth(ins[0], b, crd)?)
            }
        }
        LpPool => {
            arity(name, ins, 1, 1)?;
            one(lp_pool(ins[0], &pool_params()?)?)
        }
        LRN => {
            arity(name, ins, 1, 1)?;
            let size = a.int("size")?;
            if size <= 0 {
                return Err(a.e(format!("size {size} must be positive")));
            }
            one(lrn(
                ins[0],
                &LrnParams {
                    size: size as usize,
                    alpha: a.float_or("alpha", 1e-4)?,
                    beta: a.float_or("beta", 0.75)?,
                    bias: a.float_or("bias", 1.0)?,
                },
            )?)
        }
    }?;
    if out.len() < n_outputs {
        return Err(InterpError::new(
            name,
            format!("produces {} outputs, the node has {n_outputs}", out.len()),
        ));
    }
    out.truncate(n_outputs);
    Ok(out)
}

fn check_type(what: &str, t: &Tensor, ty: &TensorType) -> std::result::Result<(), String> {
    if t.dtype() != ty.dtype || t.shape() != ty.shape.as_slice() {
        return Err(format!(
            "{what} is {}{:?} but the graph declares {ty}",
            t.dtype(),
            t.shape()
        ));
    }
    Ok(())
}

/// Runs `g` on `inputs` (in the graph's input order) and returns its outputs in order.
/// Every input must match its declared type exactly; every value a node produces is checked
/// against the type the graph records, so a shape-inference bug surfaces as an error here.
pub fn run_graph(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let want: Vec<ValueId> = g.outputs.clone();
    let vals = eval_values(g, inputs, Some(&want))?;
    want.iter()
        .map(|v| {
            vals[v.index()]
                .as_ref()
                .map(|t| t.as_ref().clone())
                .ok_or_else(|| {
                    InterpError::new("run_graph", format!("output {} was never computed", v))
                })
        })
        .collect()
}

/// Like [`run_graph`] with inputs given by name.
pub fn run_graph_named(g: &Graph, inputs: &HashMap<String, Tensor>) -> Result<Vec<Tensor>> {
    let mut ordered = Vec::with_capacity(g.inputs.len());
    for &v in &g.inputs {
        let name = &g.value(v).name;
        match inputs.get(name) {
            Some(t) => ordered.push(t.clone()),
            None => {
                return Err(InterpError::new(
                    "run_graph",
                    format!("no value given for graph input '{name}'"),
                ))
            }
        }
    }
    run_graph(g, &ordered)
}

/// Evaluates every value of `g`, indexed by [`ValueId`]. With `keep = Some(values)` only
/// those values survive (others are dropped after their last use, bounding memory on large
/// models); with `None` every value is kept, for differential debugging.
pub fn evaluate(
    g: &Graph,
    inputs: &[Tensor],
    keep: Option<&[ValueId]>,
) -> Result<Vec<Option<Tensor>>> {
    Ok(eval_values(g, inputs, keep)?
        .into_iter()
        .map(|v| v.map(Cow::into_owned))
        .collect())
}

/// [`evaluate`] with constants borrowed from the graph instead of copied.
fn eval_values<'g>(
    g: &'g Graph,
    inputs: &'g [Tensor],
    keep: Option<&[ValueId]>,
) -> Result<Vec<Option<Cow<'g, Tensor>>>> {
    if inputs.len() != g.inputs.len() {
        return Err(InterpError::new(
            "run_graph",
            format!(
                "graph takes {} inputs, got {}",
                g.inputs.len(),
                inputs.len()
            ),
        ));
    }
    let mut vals: Vec<Option<Cow<'g, Tensor>>> = vec![None; g.values.len()];
    for (&v, t) in g.inputs.iter().zip(inputs) {
        let val = g.value(v);
        check_type(&format!("input '{}'", val.name), t, &val.ty)
            .map_err(|m| InterpError::new("run_graph", m))?;
        vals[v.index()] = Some(Cow::Borrowed(t));
    }
    for (i, v) in g.values.iter().enumerate() {
        if let ValueDef::Const(t) = &v.def {
            vals[i] = Some(Cow::Borrowed(t));
        }
    }
    // Last reader of every value, so dead values can be dropped.
    let mut last_use: Vec<usize> = vec![usize::MAX; g.values.len()];
    if keep.is_some() {
        for (ni, n) in g.nodes.iter().enumerate() {
            for &v in &n.inputs {
                last_use[v.index()] = ni;
            }
        }
        for &v in keep.unwrap_or(&[]) {
            last_use[v.index()] = usize::MAX;
        }
    }
    for (ni, n) in g.nodes.iter().enumerate() {
        let mut args = Vec::with_capacity(n.inputs.len());
        for &v in &n.inputs {
            match &vals[v.index()] {
                Some(t) => args.push(t.as_ref()),
                None => {
                    return Err(InterpError::new(
                        n.op.name(),
                        format!("input {v} is not available (defined later or dropped)"),
                    )
                    .with_node(&n.name))
                }
            }
        }
        let outs =
            run_op(n.op, &n.attrs, &args, n.outputs.len()).map_err(|e| e.with_node(&n.name))?;
        for (&ov, t) in n.outputs.iter().zip(outs) {
            let val = g.value(ov);
            check_type(&format!("output {ov} ('{}')", val.name), &t, &val.ty)
                .map_err(|m| InterpError::new(n.op.name(), m).with_node(&n.name))?;
            vals[ov.index()] = Some(Cow::Owned(t));
        }
        if keep.is_some() {
            for &v in &n.inputs {
                if last_use[v.index()] == ni {
                    vals[v.index()] = None;
                }
            }
        }
    }
    Ok(vals)
}
