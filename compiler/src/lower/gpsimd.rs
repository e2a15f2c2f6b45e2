//! Elementwise ops on the GpSimd engine: the ops the fixed engines have no instruction for
//! (trigonometric and hyperbolic functions, ELU-family activations, Shrink, PRelu, Mod, integer
//! Div, Pow with an integer exponent) become one Cranelift IR kernel each, run by
//! `GPSIMD_KERNEL` over the tiles of [`super::elementwise::tiled_typed`] (the same HBM -> SBUF
//! tiling and DMA spreading as the other elementwise kernels).
//!
//! [`Clif`] is the expression builder: typed values (f32, i32, compare results) built from
//! parameters, constants, arithmetic, min/max, compares, selects, fabs/sqrt/floor/trunc and
//! calls to the emulator's host functions ([`tahoma_isa::gpsimd::HOST_FNS`]); it prints the
//! CLIF text and counts the kernel's ops per element (one per instruction, a host call
//! `gpsimd_math_call_ops`; constants are free, being hoisted out of the element loop).
//!
//! Choice of engine (by cost: an ACTIVATE or vector instruction costs fixed + N cycles for N
//! free elements, a GpSimd kernel fixed + N x ops): Softplus = log(exp(x) + 1) is two ACTIVATEs
//! and Swish = x * sigmoid(alpha x) an ACTIVATE and a multiply, Softsign = x / (1 + |x|) two
//! vector instructions; those stay on the fixed engines (see `elementwise`). Everything here
//! needs a host math call or a select the fixed engines cannot express exactly (ThresholdedRelu
//! and PRelu as selects keep infinities, which a multiply by a 0/1 mask turns into NaN).
//! Integer Mod and Div run in i32 (int64 graph values are held as i32), exactly.

use super::elementwise::tiled_typed;
use super::movement::broadcast_to;
use super::{node_error, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{GpsimdKernel, KOp};
use std::fmt::Write as _;
use tahoma_isa::cost;
use tahoma_isa::gpsimd::{host_fn, Lane};
use tahoma_isa::Dtype;

/// The type of a kernel value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    F32,
    I32,
    /// A compare result (CLIF `i8`).
    Bool,
}

impl Ty {
    fn clif(self) -> &'static str {
        match self {
            Ty::F32 => "f32",
            Ty::I32 => "i32",
            Ty::Bool => "i8",
        }
    }
    fn of(l: Lane) -> Ty {
        match l {
            Lane::F32 => Ty::F32,
            Lane::I32 => Ty::I32,
        }
    }
}

/// A value of the kernel being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V {
    id: u32,
    pub ty: Ty,
}

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    /// fp32 division; i32 division truncates (0 for a zero divisor).
    Div,
    Min,
    Max,
}

/// Comparisons (ordered for floats: false when either side is NaN, except `Ne`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Builds one kernel: a CLIF function of typed parameters.
pub struct Clif {
    params: Vec<Ty>,
    body: String,
    /// Host functions called, as (name, CLIF signature text).
    hosts: Vec<&'static str>,
    next: u32,
    ops: u32,
}

/// CLIF's hexadecimal notation of an f32 (the only one `cranelift-reader` accepts besides
/// `0.0`, `Inf` and `NaN`); exact.
pub fn f32_hex(x: f32) -> String {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_nan() {
        return "+NaN".into();
    }
    if x.is_infinite() {
        return format!("{}Inf", if sign.is_empty() { "+" } else { sign });
    }
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let bits = x.to_bits();
    let (e, m) = ((bits >> 23) & 0xff, bits & 0x7f_ffff);
    if e == 0 {
        format!("{sign}0x0.{:06x}p-126", m << 1)
    } else {
        format!("{sign}0x1.{:06x}p{}", m << 1, e as i32 - 127)
    }
}

impl Clif {
    /// A kernel taking parameters of the given lanes.
    pub fn new(params: &[Lane]) -> Clif {
        Clif {
            params: params.iter().map(|&l| Ty::of(l)).collect(),
            body: String::new(),
            hosts: Vec::new(),
            next: params.len() as u32,
            ops: 0,
        }
    }

    /// Parameter `i`.
    pub fn param(&self, i: usize) -> V {
        V {
            id: i as u32,
            ty: self.params[i],
        }
    }

    fn def(&mut self, ty: Ty, text: std::fmt::Arguments, ops: u32) -> V {
        let v = V { id: self.next, ty };
        self.next += 1;
        let _ = writeln!(self.body, "    v{} = {text}", v.id);
        self.ops += ops;
        v
    }

    /// An fp32 constant.
    pub fn f(&mut self, c: f32) -> V {
        self.def(Ty::F32, format_args!("f32const {}", f32_hex(c)), 0)
    }

    /// An i32 constant.
    pub fn i(&mut self, c: i32) -> V {
        self.def(Ty::I32, format_args!("iconst.i32 {c}"), 0)
    }

    /// `a op b`; both of one type (f32 or i32).
    pub fn bin(&mut self, op: Bin, a: V, b: V) -> V {
        debug_assert_eq!(a.ty, b.ty);
        let float = a.ty == Ty::F32;
        if op == Bin::Div && !float {
            return self.call("tahoma_sdiv", &[a, b]);
        }
        let name = match (op, float) {
            (Bin::Add, true) => "fadd",
            (Bin::Sub, true) => "fsub",
            (Bin::Mul, true) => "fmul",
            (Bin::Div, _) => "fdiv",
            (Bin::Min, true) => "fmin",
            (Bin::Max, true) => "fmax",
            (Bin::Add, false) => "iadd",
            (Bin::Sub, false) => "isub",
            (Bin::Mul, false) => "imul",
            (Bin::Min, false) => "smin",
            (Bin::Max, false) => "smax",
        };
        self.def(a.ty, format_args!("{name} v{}, v{}", a.id, b.id), 1)
    }

    pub fn add(&mut self, a: V, b: V) -> V {
        self.bin(Bin::Add, a, b)
    }
    pub fn sub(&mut self, a: V, b: V) -> V {
        self.bin(Bin::Sub, a, b)
    }
    pub fn mul(&mut self, a: V, b: V) -> V {
        self.bin(Bin::Mul, a, b)
    }

    /// A one-operand instruction (`fneg`, `fabs`, `sqrt`, `floor`, `trunc`, `ineg`, ...).
    pub fn un(&mut self, name: &str, a: V) -> V {
        self.def(a.ty, format_args!("{name} v{}", a.id), 1)
    }

    /// `a cmp b`, a [`Ty::Bool`].
    pub fn cmp(&mut self, c: Cmp, a: V, b: V) -> V {
        debug_assert_eq!(a.ty, b.ty);
        let (inst, cc) = match (a.ty == Ty::F32, c) {
            (true, Cmp::Eq) => ("fcmp", "eq"),
            (true, Cmp::Ne) => ("fcmp", "ne"),
            (true, Cmp::Lt) => ("fcmp", "lt"),
            (true, Cmp::Le) => ("fcmp", "le"),
            (true, Cmp::Gt) => ("fcmp", "gt"),
            (true, Cmp::Ge) => ("fcmp", "ge"),
            (false, Cmp::Eq) => ("icmp", "eq"),
            (false, Cmp::Ne) => ("icmp", "ne"),
            (false, Cmp::Lt) => ("icmp", "slt"),
            (false, Cmp::Le) => ("icmp", "sle"),
            (false, Cmp::Gt) => ("icmp", "sgt"),
            (false, Cmp::Ge) => ("icmp", "sge"),
        };
        self.def(
            Ty::Bool,
            format_args!("{inst} {cc} v{}, v{}", a.id, b.id),
            1,
        )
    }

    /// `c ? a : b`.
    pub fn select(&mut self, c: V, a: V, b: V) -> V {
        debug_assert_eq!(c.ty, Ty::Bool);
        self.def(
            a.ty,
            format_args!("select v{}, v{}, v{}", c.id, a.id, b.id),
            1,
        )
    }

    /// Both compare results true.
    pub fn and(&mut self, a: V, b: V) -> V {
        self.def(Ty::Bool, format_args!("band v{}, v{}", a.id, b.id), 1)
    }

    /// An i32 converted to f32.
    pub fn to_f32(&mut self, a: V) -> V {
        debug_assert_eq!(a.ty, Ty::I32);
        self.def(Ty::F32, format_args!("fcvt_from_sint.f32 v{}", a.id), 1)
    }

    /// A call of host function `name` (see [`tahoma_isa::gpsimd::HOST_FNS`]).
    pub fn call(&mut self, name: &'static str, args: &[V]) -> V {
        let h = host_fn(name).unwrap_or_else(|| panic!("`{name}` is not a host function"));
        let idx = match self.hosts.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.hosts.push(name);
                self.hosts.len() - 1
            }
        };
        let args: Vec<String> = args.iter().map(|a| format!("v{}", a.id)).collect();
        self.def(
            Ty::of(h.ret),
            format_args!("call fn{idx}({})", args.join(", ")),
            cost::GPSIMD_MATH_CALL_OPS as u32,
        )
    }

    /// The finished kernel returning `ret` (f32 or i32).
    pub fn finish(self, ret: V) -> GpsimdKernel {
        let params: Vec<&str> = self.params.iter().map(|t| t.clif()).collect();
        let mut t = format!(
            "function %kernel({}) -> {} {{\n",
            params.join(", "),
            ret.ty.clif()
        );
        for (i, name) in self.hosts.iter().enumerate() {
            let h = host_fn(name).expect("checked in call");
            let ps: Vec<&str> = h.params.iter().map(|p| p.clif()).collect();
            let _ = writeln!(
                t,
                "    fn{i} = %{name}({}) -> {}",
                ps.join(", "),
                h.ret.clif()
            );
        }
        let ps: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| format!("v{i}: {}", p.clif()))
            .collect();
        let _ = writeln!(t, "block0({}):", ps.join(", "));
        t.push_str(&self.body);
        let _ = writeln!(t, "    return v{}", ret.id);
        t.push_str("}\n");
        GpsimdKernel {
            ops_per_elem: self.ops.max(1),
            clif: t,
        }
    }
}

fn float_attr(node: &Node, name: &str, default: f32) -> Result<f32, Diagnostic> {
    node.attrs
        .opt_float(name)
        .map(|v| v.unwrap_or(default))
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

/// `alpha * (e^x - 1)` for x <= 0, else x (the ELU family's negative branch).
fn elu(k: &mut Clif, x: V, alpha: f32) -> V {
    let em1 = k.call("tahoma_expm1f", &[x]);
    let a = k.f(alpha);
    let neg = k.mul(a, em1);
    let zero = k.f(0.0);
    let pos = k.cmp(Cmp::Gt, x, zero);
    k.select(pos, x, neg)
}

/// The kernel computing `node` from its (fp32 or i32) operands, or `None` when the op does
/// not run on the GpSimd engine.
fn kernel_for(
    l: &Lowerer,
    node: &Node,
) -> Result<Option<(GpsimdKernel, Vec<Dtype>, Dtype)>, Diagnostic> {
    let lane = |i: usize| {
        Lane::of(super::chip_dtype(l.graph.ty(node.inputs[i]).dtype).unwrap_or(Dtype::Fp32))
    };
    let out_lane =
        Lane::of(super::chip_dtype(l.graph.ty(node.outputs[0]).dtype).unwrap_or(Dtype::Fp32));
    let unary_host = match node.op {
        Op::Sin => Some("tahoma_sinf"),
        Op::Cos => Some("tahoma_cosf"),
        Op::Tan => Some("tahoma_tanf"),
        Op::Asin => Some("tahoma_asinf"),
        Op::Acos => Some("tahoma_acosf"),
        Op::Atan => Some("tahoma_atanf"),
        Op::Sinh => Some("tahoma_sinhf"),
        Op::Cosh => Some("tahoma_coshf"),
        Op::Asinh => Some("tahoma_asinhf"),
        Op::Acosh => Some("tahoma_acoshf"),
        Op::Atanh => Some("tahoma_atanhf"),
        _ => None,
    };
    let float_unary = |f: &dyn Fn(&mut Clif, V) -> V| {
        let mut k = Clif::new(&[Lane::F32]);
        let x = k.param(0);
        let y = f(&mut k, x);
        (k.finish(y), vec![Dtype::Fp32], Dtype::Fp32)
    };
    if let Some(h) = unary_host {
        return Ok(Some(float_unary(&|k, x| k.call(h, &[x]))));
    }
    Ok(Some(match node.op {
        Op::Elu => {
            let alpha = float_attr(node, "alpha", 1.0)?;
            float_unary(&|k, x| elu(k, x, alpha))
        }
        Op::Selu => {
            let alpha = float_attr(node, "alpha", 1.673_263_2)?;
            let gamma = float_attr(node, "gamma", 1.050_701)?;
            float_unary(&|k, x| {
                let e = elu(k, x, alpha);
                let g = k.f(gamma);
                k.mul(g, e)
            })
        }
        Op::Celu => {
            // max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
            let alpha = float_attr(node, "alpha", 1.0)?;
            float_unary(&|k, x| {
                let a = k.f(alpha);
                let xa = k.bin(Bin::Div, x, a);
                let em1 = k.call("tahoma_expm1f", &[xa]);
                let neg = k.mul(a, em1);
                let zero = k.f(0.0);
                let neg = k.bin(Bin::Min, zero, neg);
                let pos = k.bin(Bin::Max, zero, x);
                k.add(pos, neg)
            })
        }
        Op::Mish => float_unary(&|k, x| {
            // x * tanh(ln(1 + e^x))
            let e = k.call("tahoma_expf", &[x]);
            let sp = k.call("tahoma_log1pf", &[e]);
            let t = k.call("tahoma_tanhf", &[sp]);
            k.mul(x, t)
        }),
        Op::ThresholdedRelu => {
            let alpha = float_attr(node, "alpha", 1.0)?;
            float_unary(&|k, x| {
                let a = k.f(alpha);
                let c = k.cmp(Cmp::Gt, x, a);
                let zero = k.f(0.0);
                k.select(c, x, zero)
            })
        }
        Op::Shrink => {
            if lane(0) != Lane::F32 {
                return Ok(None);
            }
            let bias = float_attr(node, "bias", 0.0)?;
            let lambd = float_attr(node, "lambd", 0.5)?;
            float_unary(&|k, x| {
                let (nl, pl) = (k.f(-lambd), k.f(lambd));
                let b = k.f(bias);
                let zero = k.f(0.0);
                let lo = k.cmp(Cmp::Lt, x, nl);
                let hi = k.cmp(Cmp::Gt, x, pl);
                let xp = k.add(x, b);
                let xm = k.sub(x, b);
                let r = k.select(hi, xm, zero);
                k.select(lo, xp, r)
            })
        }
        Op::PRelu => {
            if lane(0) != Lane::F32 || lane(1) != Lane::F32 {
                return Ok(None);
            }
            let mut k = Clif::new(&[Lane::F32, Lane::F32]);
            let (x, s) = (k.param(0), k.param(1));
            let zero = k.f(0.0);
            let neg = k.cmp(Cmp::Lt, x, zero);
            let xs = k.mul(x, s);
            let y = k.select(neg, xs, x);
            (k.finish(y), vec![Dtype::Fp32; 2], Dtype::Fp32)
        }
        Op::Mod => {
            let fmod = node.attrs.int("fmod").unwrap_or(0) != 0;
            match (lane(0), lane(1)) {
                (Lane::I32, Lane::I32) => {
                    let mut k = Clif::new(&[Lane::I32, Lane::I32]);
                    let (x, y) = (k.param(0), k.param(1));
                    let r = k.call(if fmod { "tahoma_srem" } else { "tahoma_smod" }, &[x, y]);
                    (k.finish(r), vec![Dtype::I32; 2], Dtype::I32)
                }
                (Lane::F32, Lane::F32) => {
                    let mut k = Clif::new(&[Lane::F32, Lane::F32]);
                    let (x, y) = (k.param(0), k.param(1));
                    let mut r = k.call("tahoma_fmodf", &[x, y]);
                    if !fmod {
                        // Flooring: a non-zero remainder whose sign differs from y's moves by y.
                        let zero = k.f(0.0);
                        let nz = k.cmp(Cmp::Ne, r, zero);
                        let rn = k.cmp(Cmp::Lt, r, zero);
                        let yn = k.cmp(Cmp::Lt, y, zero);
                        let differ =
                            k.def(Ty::Bool, format_args!("bxor v{}, v{}", rn.id, yn.id), 1);
                        let fix = k.and(nz, differ);
                        let ry = k.add(r, y);
                        r = k.select(fix, ry, r);
                    }
                    (k.finish(r), vec![Dtype::Fp32; 2], Dtype::Fp32)
                }
                _ => return Ok(None),
            }
        }
        Op::Div if out_lane == Lane::I32 && lane(0) == Lane::I32 && lane(1) == Lane::I32 => {
            let mut k = Clif::new(&[Lane::I32, Lane::I32]);
            let (x, y) = (k.param(0), k.param(1));
            let q = k.bin(Bin::Div, x, y);
            (k.finish(q), vec![Dtype::I32; 2], Dtype::I32)
        }
        Op::Pow if out_lane == Lane::F32 && lane(0) == Lane::F32 && lane(1) == Lane::I32 => {
            // The exponent reaches the kernel as i32 (exact) and converts to fp32 there.
            let mut k = Clif::new(&[Lane::F32, Lane::I32]);
            let (x, y) = (k.param(0), k.param(1));
            let yf = k.to_f32(y);
            let p = k.call("tahoma_powf", &[x, yf]);
            (k.finish(p), vec![Dtype::Fp32, Dtype::I32], Dtype::Fp32)
        }
        _ => return Ok(None),
    }))
}

/// True when `node` lowers here.
pub fn handles(l: &Lowerer, node: &Node) -> bool {
    matches!(kernel_for(l, node), Ok(Some(_)))
}

/// Lowers `node` to a GpSimd kernel over tiles of its (broadcast) operands.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let Some((kernel, in_tiles, out_tile)) = kernel_for(l, node)? else {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "{} has no GpSimd kernel for these operand types",
                node.op.name()
            ),
        ));
    };
    let out = l.place_output(node.outputs[0], node)?;
    let ins: Vec<Placed> = node
        .inputs
        .iter()
        .map(|&i| broadcast_to(l, node, i, &out.shape))
        .collect();
    let index = l.program.intern_gpsimd(kernel);
    tiled_typed(
        l,
        node,
        &ins,
        &out,
        &in_tiles,
        out_tile,
        &[],
        &move |x, y, _| {
            vec![KOp::Gpsimd {
                dst: y.clone(),
                srcs: x.to_vec(),
                kernel: index,
            }]
        },
    );
    Ok(())
}
