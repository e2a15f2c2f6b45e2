//! Elementwise kernels: unary math and activations, broadcasting binary arithmetic,
//! comparisons and logic, `Where`, `Clip`, variadic `Sum`/`Max`/`Min`/`Mean`, `Cast`,
//! `IsNaN`/`IsInf`. Half-precision inputs are computed in f32 and rounded back.

use super::value::{
    any_as_f32, broadcast_shapes, broadcast_view, err, float_out, float_view, try_zip2, with_float,
    zip2, Result,
};
use crate::tensor::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, Zip};

/// Unary ops without attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Relu,
    Floor,
    Ceil,
    Round,
    Sqrt,
    Exp,
    Log,
    Reciprocal,
    Sigmoid,
    Tanh,
    Erf,
    Sin,
    Cos,
    Softplus,
    Softsign,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Mish,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "Neg",
            UnaryOp::Abs => "Abs",
            UnaryOp::Sign => "Sign",
            UnaryOp::Relu => "Relu",
            UnaryOp::Floor => "Floor",
            UnaryOp::Ceil => "Ceil",
            UnaryOp::Round => "Round",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Erf => "Erf",
            UnaryOp::Sin => "Sin",
            UnaryOp::Cos => "Cos",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Softsign => "Softsign",
            UnaryOp::Tan => "Tan",
            UnaryOp::Asin => "Asin",
            UnaryOp::Acos => "Acos",
            UnaryOp::Atan => "Atan",
            UnaryOp::Sinh => "Sinh",
            UnaryOp::Cosh => "Cosh",
            UnaryOp::Asinh => "Asinh",
            UnaryOp::Acosh => "Acosh",
            UnaryOp::Atanh => "Atanh",
            UnaryOp::Mish => "Mish",
        }
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }
            UnaryOp::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Round => x.round_ties_even(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Erf => erf(x as f64) as f32,
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            UnaryOp::Softsign => x / (1.0 + x.abs()),
            UnaryOp::Tan => x.tan(),
            UnaryOp::Asin => x.asin(),
            UnaryOp::Acos => x.acos(),
            UnaryOp::Atan => x.atan(),
            UnaryOp::Sinh => x.sinh(),
            UnaryOp::Cosh => x.cosh(),
            UnaryOp::Asinh => x.asinh(),
            UnaryOp::Acosh => x.acosh(),
            UnaryOp::Atanh => x.atanh(),
            UnaryOp::Mish => {
                let sp = if x > 20.0 { x } else { x.exp().ln_1p() };
                x * sp.tanh()
            }
        }
    }

    fn apply_int(self, x: i64) -> Option<i64> {
        match self {
            UnaryOp::Neg => Some(x.wrapping_neg()),
            UnaryOp::Abs => Some(x.wrapping_abs()),
            UnaryOp::Sign => Some(x.signum()),
            UnaryOp::Relu => Some(x.max(0)),
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => Some(x),
            _ => None,
        }
    }
}

/// Numerically stable logistic function.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The error function, accurate to f64 rounding for |x| < 4 (Maclaurin series) and
/// saturating to ±1 beyond, where 1 - |erf| < 2e-8.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 4.0 {
        return x.signum();
    }
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let x2 = x * x;
    let mut term = x; // (-1)^n x^(2n+1) / n!
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= -x2 / n;
        let add = term / (2.0 * n + 1.0);
        sum += add;
        if add.abs() <= 1e-17 * sum.abs() || n > 200.0 {
            break;
        }
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

/// Applies a unary op. Integer tensors are accepted by Neg/Abs/Sign/Relu/Floor/Ceil/Round.
pub fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let name = op.name();
    let int = |v: i64| op.apply_int(v);
    match x {
        Tensor::I64(a) if op.apply_int(0).is_some() => {
            Ok(Tensor::I64(a.mapv(|v| int(v).unwrap_or(v))))
        }
        Tensor::I32(a) if op.apply_int(0).is_some() => Ok(Tensor::I32(
            a.mapv(|v| int(v as i64).map_or(v, |r| r as i32)),
        )),
        _ => with_float(name, x, |a| Ok(a.mapv(|v| op.apply(v)))),
    }
}

/// `LeakyRelu`: `x` if `x >= 0` else `alpha * x`.
pub fn leaky_relu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    with_float("LeakyRelu", x, |a| {
        Ok(a.mapv(|v| if v >= 0.0 { v } else { alpha * v }))
    })
}

/// `Elu`: `x` if `x >= 0` else `alpha * (exp(x) - 1)`.
pub fn elu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    with_float("Elu", x, |a| {
        Ok(a.mapv(|v| if v >= 0.0 { v } else { alpha * v.exp_m1() }))
    })
}

/// `Selu`: `gamma * (x if x > 0 else alpha * (exp(x) - 1))`.
pub fn selu(x: &Tensor, alpha: f32, gamma: f32) -> Result<Tensor> {
    with_float("Selu", x, |a| {
        Ok(a.mapv(|v| gamma * if v > 0.0 { v } else { alpha * v.exp_m1() }))
    })
}

/// `Celu`: `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`.
pub fn celu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    with_float("Celu", x, |a| {
        Ok(a.mapv(|v| v.max(0.0) + (alpha * (v / alpha).exp_m1()).min(0.0)))
    })
}

/// `ThresholdedRelu`: `x if x > alpha else 0`.
pub fn thresholded_relu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    with_float("ThresholdedRelu", x, |a| {
        Ok(a.mapv(|v| if v > alpha { v } else { 0.0 }))
    })
}

/// `Shrink`: `x - bias` if `x > lambd`, `x + bias` if `x < -lambd`, else 0.
pub fn shrink(x: &Tensor, bias: f32, lambd: f32) -> Result<Tensor> {
    let f = |v: f32| {
        if v < -lambd {
            v + bias
        } else if v > lambd {
            v - bias
        } else {
            0.0
        }
    };
    match x {
        Tensor::I64(a) => Ok(Tensor::I64(a.mapv(|v| f(v as f32) as i64))),
        Tensor::I32(a) => Ok(Tensor::I32(a.mapv(|v| f(v as f32) as i32))),
        _ => with_float("Shrink", x, |a| Ok(a.mapv(f))),
    }
}

/// `Swish`: `x * sigmoid(alpha * x)`.
pub fn swish(x: &Tensor, alpha: f32) -> Result<Tensor> {
    with_float("Swish", x, |a| Ok(a.mapv(|v| v * sigmoid(alpha * v))))
}

/// `PRelu(x, slope)`: `x` if `x >= 0` else `slope * x`; `slope` broadcasts to `x`.
pub fn prelu(x: &Tensor, slope: &Tensor) -> Result<Tensor> {
    let op = "PRelu";
    if x.dtype() != slope.dtype() {
        return err(
            op,
            format!(
                "x and slope types differ: {} and {}",
                x.dtype(),
                slope.dtype()
            ),
        );
    }
    let r = match (x, slope) {
        (Tensor::I64(a), Tensor::I64(b)) => {
            Tensor::I64(zip2(
                op,
                a,
                b,
                |v, s| if v >= 0 { v } else { v.wrapping_mul(s) },
            )?)
        }
        (Tensor::I32(a), Tensor::I32(b)) => {
            Tensor::I32(zip2(
                op,
                a,
                b,
                |v, s| if v >= 0 { v } else { v.wrapping_mul(s) },
            )?)
        }
        _ => {
            let a = float_view(op, x)?;
            let b = float_view(op, slope)?;
            float_out(
                op,
                x.dtype(),
                zip2(op, &a, &b, |v, s| if v >= 0.0 { v } else { s * v })?,
            )?
        }
    };
    if r.shape() != x.shape() {
        return err(
            op,
            format!(
                "slope {:?} must broadcast to x {:?}",
                slope.shape(),
                x.shape()
            ),
        );
    }
    Ok(r)
}

/// `HardSigmoid`: `max(0, min(1, alpha * x + beta))`.
pub fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    with_float("HardSigmoid", x, |a| {
        Ok(a.mapv(|v| (alpha * v + beta).clamp(0.0, 1.0)))
    })
}

/// `HardSwish`: `x * max(0, min(1, x / 6 + 1/2))`.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    with_float("HardSwish", x, |a| {
        Ok(a.mapv(|v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)))
    })
}

/// The two formulas of `Gelu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluApprox {
    None,
    Tanh,
}

/// `Gelu` (opset 20): exact with erf, or the tanh approximation.
pub fn gelu(x: &Tensor, approx: GeluApprox) -> Result<Tensor> {
    with_float("Gelu", x, |a| {
        Ok(a.mapv(|v| {
            let v64 = v as f64;
            let r = match approx {
                GeluApprox::None => 0.5 * v64 * (1.0 + erf(v64 / std::f64::consts::SQRT_2)),
                GeluApprox::Tanh => {
                    let c = (2.0 / std::f64::consts::PI).sqrt();
                    0.5 * v64 * (1.0 + (c * (v64 + 0.044715 * v64 * v64 * v64)).tanh())
                }
            };
            r as f32
        }))
    })
}

/// Binary arithmetic with broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// `Mod` with `fmod = 0` (sign of the divisor, integers only) ...
    Mod,
    /// ... and with `fmod = 1` (sign of the dividend, C `fmod`).
    Fmod,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
            BinaryOp::Max => "Max",
            BinaryOp::Min => "Min",
            BinaryOp::Mod | BinaryOp::Fmod => "Mod",
        }
    }

    fn f(self, x: f32, y: f32) -> f32 {
        match self {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
            BinaryOp::Pow => pow_f32(x, y),
            BinaryOp::Max => {
                if x.is_nan() || y.is_nan() {
                    f32::NAN
                } else {
                    x.max(y)
                }
            }
            BinaryOp::Min => {
                if x.is_nan() || y.is_nan() {
                    f32::NAN
                } else {
                    x.min(y)
                }
            }
            BinaryOp::Fmod => x % y,
            BinaryOp::Mod => {
                let r = x % y;
                if r != 0.0 && (r < 0.0) != (y < 0.0) {
                    r + y
                } else {
                    r
                }
            }
        }
    }

    fn i(self, x: i64, y: i64) -> Option<i64> {
        match self {
            BinaryOp::Add => Some(x.wrapping_add(y)),
            BinaryOp::Sub => Some(x.wrapping_sub(y)),
            BinaryOp::Mul => Some(x.wrapping_mul(y)),
            BinaryOp::Div => x.checked_div(y),
            BinaryOp::Pow => Some(int_pow(x, y)),
            BinaryOp::Max => Some(x.max(y)),
            BinaryOp::Min => Some(x.min(y)),
            BinaryOp::Fmod => x.checked_rem(y),
            BinaryOp::Mod => x.checked_rem(y).map(|r| {
                if r != 0 && (r < 0) != (y < 0) {
                    r + y
                } else {
                    r
                }
            }),
        }
    }
}

fn pow_f32(x: f32, y: f32) -> f32 {
    // Compute in f64 so integral exponents of f32 bases round like numpy's float32 power.
    (x as f64).powf(y as f64) as f32
}

fn int_pow(x: i64, y: i64) -> i64 {
    if y < 0 {
        // Integer power with a negative exponent truncates toward zero like numpy's float path.
        return (x as f64).powf(y as f64) as i64;
    }
    let mut r: i64 = 1;
    let mut b = x;
    let mut e = y;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

/// Binary arithmetic with multidirectional broadcasting. Both operands must have the same
/// dtype except for `Pow`, whose exponent may be any numeric type (the result takes the base's).
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = op.name();
    if op == BinaryOp::Pow && a.dtype() != b.dtype() {
        if a.dtype().is_float() {
            let x = float_view(name, a)?;
            let y = any_as_f32(b);
            return float_out(name, a.dtype(), zip2(name, &x, &y, |p, q| op.f(p, q))?);
        }
        let x = any_as_f32(a);
        let y = any_as_f32(b);
        let r = zip2(name, &x, &y, |p, q| (p as f64).powf(q as f64))?;
        return match a {
            Tensor::I64(_) => Ok(Tensor::I64(r.mapv(|v| v as i64))),
            Tensor::I32(_) => Ok(Tensor::I32(r.mapv(|v| v as i32))),
            _ => err(name, format!("unsupported base type {}", a.dtype())),
        };
    }
    if a.dtype() != b.dtype() {
        return err(
            name,
            format!("operand types differ: {} and {}", a.dtype(), b.dtype()),
        );
    }
    let div0 = "integer division by zero";
    match (a, b) {
        (Tensor::I64(x), Tensor::I64(y)) => {
            Ok(Tensor::I64(try_zip2(name, x, y, |p, q| op.i(p, q), div0)?))
        }
        (Tensor::I32(x), Tensor::I32(y)) => Ok(Tensor::I32(try_zip2(
            name,
            x,
            y,
            |p, q| op.i(p as i64, q as i64).map(|r| r as i32),
            div0,
        )?)),
        (Tensor::Bool(_), _) => err(name, "arithmetic on bool tensors is not defined"),
        _ => {
            let x = float_view(name, a)?;
            let y = float_view(name, b)?;
            float_out(name, a.dtype(), zip2(name, &x, &y, |p, q| op.f(p, q))?)
        }
    }
}

/// Variadic ops folding a binary op over any number of broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariadicOp {
    Sum,
    Max,
    Min,
    Mean,
}

/// `Sum`, `Max`, `Min`, `Mean` over one or more inputs with broadcasting.
pub fn variadic(op: VariadicOp, xs: &[&Tensor]) -> Result<Tensor> {
    let (name, bin) = match op {
        VariadicOp::Sum => ("Sum", BinaryOp::Add),
        VariadicOp::Max => ("Max", BinaryOp::Max),
        VariadicOp::Min => ("Min", BinaryOp::Min),
        VariadicOp::Mean => ("Mean", BinaryOp::Add),
    };
    let Some((first, rest)) = xs.split_first() else {
        return err(name, "needs at least one input");
    };
    let mut acc = (*first).clone();
    for x in rest {
        acc = binary(bin, &acc, x).map_err(|mut e| {
            e.op = name.to_string();
            e
        })?;
    }
    if op == VariadicOp::Mean {
        let n = Tensor::from_f32(acc.dtype(), &[], &[xs.len() as f32]);
        acc = binary(BinaryOp::Div, &acc, &n)?;
    }
    Ok(acc)
}

/// Comparison ops; the result is bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

impl CompareOp {
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Equal => "Equal",
            CompareOp::Less => "Less",
            CompareOp::Greater => "Greater",
            CompareOp::LessOrEqual => "LessOrEqual",
            CompareOp::GreaterOrEqual => "GreaterOrEqual",
        }
    }

    fn test<T: PartialOrd>(self, x: T, y: T) -> bool {
        match self {
            CompareOp::Equal => x == y,
            CompareOp::Less => x < y,
            CompareOp::Greater => x > y,
            CompareOp::LessOrEqual => x <= y,
            CompareOp::GreaterOrEqual => x >= y,
        }
    }
}

/// Broadcasting comparison of two tensors of the same dtype.
pub fn compare(op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = op.name();
    if a.dtype() != b.dtype() {
        return err(
            name,
            format!("operand types differ: {} and {}", a.dtype(), b.dtype()),
        );
    }
    let r = match (a, b) {
        (Tensor::I64(x), Tensor::I64(y)) => zip2(name, x, y, |p, q| op.test(p, q))?,
        (Tensor::I32(x), Tensor::I32(y)) => zip2(name, x, y, |p, q| op.test(p, q))?,
        (Tensor::Bool(x), Tensor::Bool(y)) => zip2(name, x, y, |p, q| op.test(p, q))?,
        _ => {
            let x = float_view(name, a)?;
            let y = float_view(name, b)?;
            zip2(name, &x, &y, |p, q| op.test(p, q))?
        }
    };
    Ok(Tensor::Bool(r))
}

/// Logical ops on bool tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
    Xor,
}

/// Broadcasting `And`/`Or`/`Xor`.
pub fn logical(op: LogicOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = match op {
        LogicOp::And => "And",
        LogicOp::Or => "Or",
        LogicOp::Xor => "Xor",
    };
    match (a, b) {
        (Tensor::Bool(x), Tensor::Bool(y)) => {
            Ok(Tensor::Bool(zip2(name, x, y, |p, q| match op {
                LogicOp::And => p && q,
                LogicOp::Or => p || q,
                LogicOp::Xor => p != q,
            })?))
        }
        _ => err(
            name,
            format!("expects bool operands, got {} and {}", a.dtype(), b.dtype()),
        ),
    }
}

/// `Not` of a bool tensor.
pub fn not(x: &Tensor) -> Result<Tensor> {
    match x {
        Tensor::Bool(a) => Ok(Tensor::Bool(a.mapv(|v| !v))),
        other => err(
            "Not",
            format!("expects a bool tensor, got {}", other.dtype()),
        ),
    }
}

/// `IsNaN`.
pub fn is_nan(x: &Tensor) -> Result<Tensor> {
    let a = float_view("IsNaN", x)?;
    Ok(Tensor::Bool(a.mapv(|v| v.is_nan())))
}

/// `IsInf` with its two detection switches.
pub fn is_inf(x: &Tensor, detect_positive: bool, detect_negative: bool) -> Result<Tensor> {
    let a = float_view("IsInf", x)?;
    Ok(Tensor::Bool(a.mapv(|v| {
        v.is_infinite() && ((v > 0.0 && detect_positive) || (v < 0.0 && detect_negative))
    })))
}

fn where3<T: Clone>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
    let shape = broadcast_shapes("Where", &[c.shape(), x.shape(), y.shape()])?;
    let vc = broadcast_view("Where", c, &shape)?;
    let vx = broadcast_view("Where", x, &shape)?;
    let vy = broadcast_view("Where", y, &shape)?;
    Ok(Zip::from(&vc)
        .and(&vx)
        .and(&vy)
        .map_collect(|&c, a, b| if c { a.clone() } else { b.clone() }))
}

/// `Where(cond, x, y)` with three-way broadcasting.
pub fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let Tensor::Bool(c) = cond else {
        return err(
            "Where",
            format!("condition must be bool, got {}", cond.dtype()),
        );
    };
    Ok(match (x, y) {
        (Tensor::F32(a), Tensor::F32(b)) => Tensor::F32(where3(c, a, b)?),
        (Tensor::F16(a), Tensor::F16(b)) => Tensor::F16(where3(c, a, b)?),
        (Tensor::BF16(a), Tensor::BF16(b)) => Tensor::BF16(where3(c, a, b)?),
        (Tensor::I64(a), Tensor::I64(b)) => Tensor::I64(where3(c, a, b)?),
        (Tensor::I32(a), Tensor::I32(b)) => Tensor::I32(where3(c, a, b)?),
        (Tensor::Bool(a), Tensor::Bool(b)) => Tensor::Bool(where3(c, a, b)?),
        _ => {
            return err(
                "Where",
                format!("x and y types differ: {} and {}", x.dtype(), y.dtype()),
            )
        }
    })
}

fn scalar_bound(t: Option<&Tensor>, what: &str) -> Result<Option<f64>> {
    match t {
        None => Ok(None),
        Some(t) if t.len() == 1 => Ok(Some(match t {
            Tensor::I64(a) => a.iter().next().copied().unwrap_or(0) as f64,
            Tensor::I32(a) => a.iter().next().copied().unwrap_or(0) as f64,
            other => any_as_f32(other).iter().next().copied().unwrap_or(0.0) as f64,
        })),
        Some(t) => err(
            "Clip",
            format!("{what} must be a scalar, got shape {:?}", t.shape()),
        ),
    }
}

/// `Clip(x, min, max)`: bounds are optional scalars; `min(max(x, lo), hi)`.
pub fn clip(x: &Tensor, min: Option<&Tensor>, max: Option<&Tensor>) -> Result<Tensor> {
    let lo = scalar_bound(min, "min")?;
    let hi = scalar_bound(max, "max")?;
    match x {
        Tensor::I64(a) => Ok(Tensor::I64(a.mapv(|v| {
            let v = lo.map_or(v, |l| v.max(l as i64));
            hi.map_or(v, |h| v.min(h as i64))
        }))),
        Tensor::I32(a) => Ok(Tensor::I32(a.mapv(|v| {
            let v = lo.map_or(v, |l| v.max(l as i32));
            hi.map_or(v, |h| v.min(h as i32))
        }))),
        _ => with_float("Clip", x, |a| {
            Ok(a.mapv(|v| {
                let v = lo.map_or(v, |l| if v < l as f32 { l as f32 } else { v });
                hi.map_or(v, |h| if v > h as f32 { h as f32 } else { v })
            }))
        }),
    }
}

/// `Cast` to `to`. Floats to integers truncate toward zero (saturating), anything to bool is
/// `!= 0`, narrower floats round to nearest even.
pub fn cast(x: &Tensor, to: DType) -> Tensor {
    if x.dtype() == to {
        return x.clone();
    }
    // Integer-to-integer and integer-to-bool keep full precision.
    match (x, to) {
        (Tensor::I64(a), DType::I32) => return Tensor::I32(a.mapv(|v| v as i32)),
        (Tensor::I32(a), DType::I64) => return Tensor::I64(a.mapv(|v| v as i64)),
        (Tensor::I64(a), DType::Bool) => return Tensor::Bool(a.mapv(|v| v != 0)),
        (Tensor::I32(a), DType::Bool) => return Tensor::Bool(a.mapv(|v| v != 0)),
        (Tensor::I64(a), DType::F32) => return Tensor::F32(a.mapv(|v| v as f32)),
        (Tensor::Bool(a), DType::I64) => return Tensor::I64(a.mapv(|v| v as i64)),
        (Tensor::Bool(a), DType::I32) => return Tensor::I32(a.mapv(|v| v as i32)),
        _ => {}
    }
    let f: ArrayD<f64> = match x {
        Tensor::F32(a) => a.mapv(|v| v as f64),
        Tensor::F16(a) => a.mapv(|v| v.to_f64()),
        Tensor::BF16(a) => a.mapv(|v| v.to_f64()),
        Tensor::I64(a) => a.mapv(|v| v as f64),
        Tensor::I32(a) => a.mapv(|v| v as f64),
        Tensor::Bool(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
    };
    match to {
        DType::F32 => Tensor::F32(f.mapv(|v| v as f32)),
        // Every source value except a large integer is exact in f32, so going through f32
        // rounds once (half's `from_f64` does not round correctly in every case).
        DType::F16 => Tensor::F16(f.mapv(|v| f16::from_f32(v as f32))),
        DType::BF16 => Tensor::BF16(f.mapv(|v| bf16::from_f32(v as f32))),
        DType::I64 => Tensor::I64(f.mapv(|v| v as i64)),
        DType::I32 => Tensor::I32(f.mapv(|v| v as i32)),
        DType::Bool => Tensor::Bool(f.mapv(|v| v != 0.0)),
    }
}
