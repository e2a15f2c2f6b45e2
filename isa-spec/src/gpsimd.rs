//! The GpSimd engine's kernel contract, shared by the compiler (which writes kernels) and the
//! emulator (which JIT-compiles and runs them).
//!
//! A kernel is one Cranelift IR function (CLIF text, the format `cranelift-reader` parses) that
//! `GPSIMD_KERNEL` calls once per element: one parameter per input access and one result, each
//! `f32`, or `i32` when the access is i32 ([`Lane::of`]). Kernels are straight-line: a single
//! block of scalar arithmetic, comparisons and selects, no memory access, no traps, and calls
//! only to the host functions of [`HOST_FNS`] (by their `%name`), which the emulator implements
//! with Rust's f32 math so results do not depend on the code generator. The emulator refuses
//! anything else when it loads the program.

use crate::Dtype;

/// The type of a kernel parameter or result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    F32,
    I32,
}

impl Lane {
    /// How an access of `dtype` reaches a kernel: i32 stays integer, the rest become fp32.
    pub fn of(dtype: Dtype) -> Lane {
        if dtype == Dtype::I32 {
            Lane::I32
        } else {
            Lane::F32
        }
    }
    /// The CLIF type name.
    pub fn clif(self) -> &'static str {
        match self {
            Lane::F32 => "f32",
            Lane::I32 => "i32",
        }
    }
}

/// A function the emulator provides to kernels under a fixed name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFn {
    /// The CLIF name, without `%`.
    pub name: &'static str,
    pub params: &'static [Lane],
    pub ret: Lane,
    /// What it computes.
    pub doc: &'static str,
}

const F1: &[Lane] = &[Lane::F32];
const F2: &[Lane] = &[Lane::F32, Lane::F32];
const I2: &[Lane] = &[Lane::I32, Lane::I32];

macro_rules! host {
    ($name:literal, $params:expr, $ret:expr, $doc:literal) => {
        HostFn {
            name: $name,
            params: $params,
            ret: $ret,
            doc: $doc,
        }
    };
}

/// Every host function, in a fixed order.
pub const HOST_FNS: &[HostFn] = &[
    host!("tahoma_sinf", F1, Lane::F32, "sin(x)"),
    host!("tahoma_cosf", F1, Lane::F32, "cos(x)"),
    host!("tahoma_tanf", F1, Lane::F32, "tan(x)"),
    host!("tahoma_asinf", F1, Lane::F32, "asin(x)"),
    host!("tahoma_acosf", F1, Lane::F32, "acos(x)"),
    host!("tahoma_atanf", F1, Lane::F32, "atan(x)"),
    host!("tahoma_sinhf", F1, Lane::F32, "sinh(x)"),
    host!("tahoma_coshf", F1, Lane::F32, "cosh(x)"),
    host!("tahoma_tanhf", F1, Lane::F32, "tanh(x)"),
    host!("tahoma_asinhf", F1, Lane::F32, "asinh(x)"),
    host!("tahoma_acoshf", F1, Lane::F32, "acosh(x)"),
    host!("tahoma_atanhf", F1, Lane::F32, "atanh(x)"),
    host!("tahoma_expf", F1, Lane::F32, "e^x"),
    host!("tahoma_expm1f", F1, Lane::F32, "e^x - 1"),
    host!("tahoma_logf", F1, Lane::F32, "ln(x)"),
    host!("tahoma_log1pf", F1, Lane::F32, "ln(1 + x)"),
    host!("tahoma_powf", F2, Lane::F32, "x^y"),
    host!(
        "tahoma_fmodf",
        F2,
        Lane::F32,
        "x - trunc(x / y) * y (C fmod: the sign of x)"
    ),
    host!(
        "tahoma_sdiv",
        I2,
        Lane::I32,
        "x / y truncated toward zero, wrapping; 0 when y = 0"
    ),
    host!(
        "tahoma_srem",
        I2,
        Lane::I32,
        "x - (x / y) * y with truncating division (the sign of x); 0 when y = 0"
    ),
    host!(
        "tahoma_smod",
        I2,
        Lane::I32,
        "x mod y with flooring division (the sign of y); 0 when y = 0"
    ),
];

/// The host function called `name` (without `%`).
pub fn host_fn(name: &str) -> Option<&'static HostFn> {
    HOST_FNS.iter().find(|h| h.name == name)
}

/// CLIF instructions a kernel may use (besides `call` to a host function and `return`).
pub const ALLOWED_OPCODES: &[&str] = &[
    "iconst",
    "f32const",
    "f64const",
    "fadd",
    "fsub",
    "fmul",
    "fdiv",
    "fneg",
    "fabs",
    "fmin",
    "fmax",
    "fma",
    "fcopysign",
    "sqrt",
    "floor",
    "ceil",
    "trunc",
    "nearest",
    "fcmp",
    "icmp",
    "select",
    "iadd",
    "isub",
    "imul",
    "ineg",
    "iabs",
    "smin",
    "smax",
    "umin",
    "umax",
    "band",
    "bor",
    "bxor",
    "bnot",
    "ishl",
    "sshr",
    "ushr",
    "bmask",
    "uextend",
    "sextend",
    "ireduce",
    "fpromote",
    "fdemote",
    "fcvt_from_sint",
    "fcvt_from_uint",
    "fcvt_to_sint_sat",
    "fcvt_to_uint_sat",
    "bitcast",
    "call",
    "return",
];
