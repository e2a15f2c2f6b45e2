//! The GpSimd engine: the program's kernel table JIT-compiled for the host once at load, and
//! `GPSIMD_KERNEL`, which runs one kernel over its operands.
//!
//! Loading ([`Kernels::compile`]) parses each kernel's CLIF (`cranelift-reader`), checks it
//! against the contract of [`tahoma_isa::gpsimd`] (one block, scalar f32/i32 parameters and
//! result, whitelisted instructions, calls only to the host functions, which are bound to the
//! Rust implementations below), and compiles it with `cranelift-jit` for the host ISA
//! (`cranelift-native`). Each kernel gets a generated row driver, itself CLIF text compiled into
//! the same module: `row(a, b, c, out, n)` loads element `i` of each input lane array, calls the
//! kernel and stores its result, for `i < n`. Execution gathers each input access into a lane
//! array (f32 bits, or i32 for i32 accesses), calls the driver once for the whole access and
//! scatters the results rounded to the destination's dtype. Errors are stable codes: E2008 for
//! a kernel that does not parse, breaks the contract or does not compile; E3007 (the
//! `kernel_index` constraint) for an instruction whose accesses do not match its kernel.

use crate::access::{encode, gather_raw, scatter_raw, Plan};
use crate::error::Fault;
use crate::memory::Memories;
use cranelift_codegen::ir::{self, ExternalName, InstructionData, UserExternalName};
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use std::collections::HashMap;
use std::fmt::Write as _;
use tahoma_isa::gpsimd::{host_fn, HostFn, Lane, ALLOWED_OPCODES, HOST_FNS};
use tahoma_isa::program::GpsimdKernel as KernelEntry;
use tahoma_isa::{Dtype, GpsimdKernel};

/// The row driver's machine signature: input lane arrays a, b, c, the output array, the count.
type RowFn = unsafe extern "C" fn(*const u32, *const u32, *const u32, *mut u32, u64);

/// Why a kernel of the table was refused (error E2008).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    pub kernel: usize,
    pub message: String,
}

/// One compiled kernel.
struct Compiled {
    params: Vec<Lane>,
    ret: Lane,
    row: RowFn,
}

/// The compiled kernel table of a loaded program.
#[derive(Default)]
pub struct Kernels {
    module: Option<JITModule>,
    compiled: Vec<Compiled>,
}

impl Drop for Kernels {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the row drivers (the only pointers into this code) live in `compiled`,
            // which is dropped with `self` and never handed out.
            unsafe { m.free_memory() };
        }
    }
}

extern "C" fn h_sin(x: f32) -> f32 {
    x.sin()
}
extern "C" fn h_cos(x: f32) -> f32 {
    x.cos()
}
extern "C" fn h_tan(x: f32) -> f32 {
    x.tan()
}
extern "C" fn h_asin(x: f32) -> f32 {
    x.asin()
}
extern "C" fn h_acos(x: f32) -> f32 {
    x.acos()
}
extern "C" fn h_atan(x: f32) -> f32 {
    x.atan()
}
extern "C" fn h_sinh(x: f32) -> f32 {
    x.sinh()
}
extern "C" fn h_cosh(x: f32) -> f32 {
    x.cosh()
}
extern "C" fn h_tanh(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn h_asinh(x: f32) -> f32 {
    x.asinh()
}
extern "C" fn h_acosh(x: f32) -> f32 {
    x.acosh()
}
extern "C" fn h_atanh(x: f32) -> f32 {
    x.atanh()
}
extern "C" fn h_exp(x: f32) -> f32 {
    x.exp()
}
extern "C" fn h_expm1(x: f32) -> f32 {
    x.exp_m1()
}
extern "C" fn h_log(x: f32) -> f32 {
    x.ln()
}
extern "C" fn h_log1p(x: f32) -> f32 {
    x.ln_1p()
}
extern "C" fn h_pow(x: f32, y: f32) -> f32 {
    x.powf(y)
}
extern "C" fn h_fmod(x: f32, y: f32) -> f32 {
    x % y
}
extern "C" fn h_sdiv(x: i32, y: i32) -> i32 {
    if y == 0 {
        0
    } else {
        x.wrapping_div(y)
    }
}
extern "C" fn h_srem(x: i32, y: i32) -> i32 {
    if y == 0 {
        0
    } else {
        x.wrapping_rem(y)
    }
}
extern "C" fn h_smod(x: i32, y: i32) -> i32 {
    if y == 0 {
        return 0;
    }
    let r = x.wrapping_rem(y);
    if r != 0 && ((r < 0) != (y < 0)) {
        r.wrapping_add(y)
    } else {
        r
    }
}

/// The Rust implementation of a host function.
fn host_address(name: &str) -> Option<*const u8> {
    let f1 = |f: extern "C" fn(f32) -> f32| f as *const u8;
    let f2 = |f: extern "C" fn(f32, f32) -> f32| f as *const u8;
    let i2 = |f: extern "C" fn(i32, i32) -> i32| f as *const u8;
    Some(match name {
        "tahoma_sinf" => f1(h_sin),
        "tahoma_cosf" => f1(h_cos),
        "tahoma_tanf" => f1(h_tan),
        "tahoma_asinf" => f1(h_asin),
        "tahoma_acosf" => f1(h_acos),
        "tahoma_atanf" => f1(h_atan),
        "tahoma_sinhf" => f1(h_sinh),
        "tahoma_coshf" => f1(h_cosh),
        "tahoma_tanhf" => f1(h_tanh),
        "tahoma_asinhf" => f1(h_asinh),
        "tahoma_acoshf" => f1(h_acosh),
        "tahoma_atanhf" => f1(h_atanh),
        "tahoma_expf" => f1(h_exp),
        "tahoma_expm1f" => f1(h_expm1),
        "tahoma_logf" => f1(h_log),
        "tahoma_log1pf" => f1(h_log1p),
        "tahoma_powf" => f2(h_pow),
        "tahoma_fmodf" => f2(h_fmod),
        "tahoma_sdiv" => i2(h_sdiv),
        "tahoma_srem" => i2(h_srem),
        "tahoma_smod" => i2(h_smod),
        _ => return None,
    })
}

fn lane_of(ty: ir::Type) -> Option<Lane> {
    match ty {
        ir::types::F32 => Some(Lane::F32),
        ir::types::I32 => Some(Lane::I32),
        _ => None,
    }
}

fn host_sig(h: &HostFn, cc: CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(cc);
    for &p in h.params {
        sig.params.push(ir::AbiParam::new(clif_type(p)));
    }
    sig.returns.push(ir::AbiParam::new(clif_type(h.ret)));
    sig
}

fn clif_type(l: Lane) -> ir::Type {
    match l {
        Lane::F32 => ir::types::F32,
        Lane::I32 => ir::types::I32,
    }
}

/// Parses one function of CLIF text.
fn parse_one(text: &str) -> Result<ir::Function, String> {
    let mut funcs = cranelift_reader::parse_functions(text).map_err(|e| e.to_string())?;
    if funcs.len() != 1 {
        return Err(format!(
            "the text holds {} functions, a kernel is exactly one",
            funcs.len()
        ));
    }
    Ok(funcs.remove(0))
}

/// Checks a parsed kernel against the contract; returns its parameter and result lanes.
fn check_kernel(f: &ir::Function) -> Result<(Vec<Lane>, Lane), String> {
    let sig = &f.signature;
    if sig.params.len() > 3 {
        return Err(format!(
            "{} parameters; a kernel takes at most 3",
            sig.params.len()
        ));
    }
    let params = sig
        .params
        .iter()
        .map(|p| lane_of(p.value_type))
        .collect::<Option<Vec<Lane>>>()
        .ok_or("kernel parameters are f32 or i32")?;
    let ret = match sig.returns.as_slice() {
        [r] => lane_of(r.value_type).ok_or("the kernel result is f32 or i32")?,
        _ => return Err("a kernel returns exactly one value".into()),
    };
    if f.layout.blocks().count() != 1 {
        return Err("a kernel is straight-line code: exactly one block".into());
    }
    if !f.sized_stack_slots.is_empty()
        || !f.dynamic_stack_slots.is_empty()
        || !f.global_values.is_empty()
    {
        return Err("a kernel has no stack slots or global values".into());
    }
    for block in f.layout.blocks() {
        for inst in f.layout.block_insts(block) {
            let op = f.dfg.insts[inst].opcode();
            let name = op.to_string();
            if !ALLOWED_OPCODES.contains(&name.as_str()) {
                return Err(format!(
                    "instruction `{name}` is not allowed in a kernel (allowed: {})",
                    ALLOWED_OPCODES.join(", ")
                ));
            }
            for &v in f.dfg.inst_results(inst) {
                if f.dfg.value_type(v).is_vector() {
                    return Err(format!("`{name}` produces a vector; kernels are scalar"));
                }
            }
            if let InstructionData::Call { func_ref, .. } = f.dfg.insts[inst] {
                let ext = &f.dfg.ext_funcs[func_ref];
                let ExternalName::TestCase(tc) = &ext.name else {
                    return Err("a kernel calls host functions by `%name` only".into());
                };
                let callee = String::from_utf8_lossy(tc.raw()).to_string();
                let h = host_fn(&callee).ok_or_else(|| {
                    let names: Vec<&str> = HOST_FNS.iter().map(|h| h.name).collect();
                    format!(
                        "`%{callee}` is not a host function (host functions: {})",
                        names.join(", ")
                    )
                })?;
                let s = &f.dfg.signatures[ext.signature];
                let want = host_sig(h, s.call_conv);
                if s.params != want.params || s.returns != want.returns {
                    return Err(format!("`%{callee}` is called with the wrong signature"));
                }
            }
        }
    }
    Ok((params, ret))
}

/// CLIF text of the row driver of a kernel with `params` and `ret`, calling `%kernel`.
fn row_driver_text(params: &[Lane], ret: Lane) -> String {
    let mut sig = String::new();
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            sig.push_str(", ");
        }
        sig.push_str(p.clif());
    }
    let mut t = String::new();
    let _ = writeln!(t, "function %row(i64, i64, i64, i64, i64) {{");
    let _ = writeln!(t, "    sig0 = ({sig}) -> {}", ret.clif());
    let _ = writeln!(t, "    fn0 = %kernel sig0");
    let _ = writeln!(t, "block0(v0: i64, v1: i64, v2: i64, v3: i64, v4: i64):");
    let _ = writeln!(t, "    v5 = iconst.i64 0");
    let _ = writeln!(t, "    v8 = iconst.i64 2");
    let _ = writeln!(t, "    v9 = iconst.i64 1");
    let _ = writeln!(t, "    brif v4, block1(v5), block2");
    let _ = writeln!(t, "block1(v6: i64):");
    let _ = writeln!(t, "    v7 = ishl v6, v8");
    let mut args = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let _ = writeln!(t, "    v{} = iadd v{i}, v7", 10 + 2 * i);
        let _ = writeln!(t, "    v{} = load.{} v{}", 11 + 2 * i, p.clif(), 10 + 2 * i);
        args.push(format!("v{}", 11 + 2 * i));
    }
    let _ = writeln!(t, "    v20 = call fn0({})", args.join(", "));
    let _ = writeln!(t, "    v21 = iadd v3, v7");
    let _ = writeln!(t, "    store v20, v21");
    let _ = writeln!(t, "    v22 = iadd v6, v9");
    let _ = writeln!(t, "    v23 = icmp ult v22, v4");
    let _ = writeln!(t, "    brif v23, block1(v22), block2");
    let _ = writeln!(t, "block2:");
    let _ = writeln!(t, "    return");
    let _ = writeln!(t, "}}");
    t
}

/// Rewrites `%name` callees of `f` to the module's functions and sets every calling convention
/// to the host's.
fn link(
    f: &mut ir::Function,
    cc: CallConv,
    resolve: &dyn Fn(&str) -> Option<FuncId>,
) -> Result<(), String> {
    f.signature.call_conv = cc;
    for (_, s) in f.dfg.signatures.iter_mut() {
        s.call_conv = cc;
    }
    let refs: Vec<ir::FuncRef> = f.dfg.ext_funcs.keys().collect();
    for r in refs {
        let name = match &f.dfg.ext_funcs[r].name {
            ExternalName::TestCase(tc) => String::from_utf8_lossy(tc.raw()).to_string(),
            _ => return Err("callees are named `%name`".into()),
        };
        let id = resolve(&name).ok_or_else(|| format!("unknown callee `%{name}`"))?;
        let user = f.declare_imported_user_function(UserExternalName::new(0, id.as_u32()));
        f.dfg.ext_funcs[r].name = ExternalName::user(user);
    }
    Ok(())
}

impl Kernels {
    /// Parses, checks and compiles every kernel of the table. A panic inside Cranelift (a
    /// code-generator bug on some input the checks let through) becomes an E2008 error too.
    pub fn compile(table: &[KernelEntry]) -> Result<Kernels, KernelError> {
        std::panic::catch_unwind(|| Kernels::compile_unguarded(table)).unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(KernelError {
                kernel: 0,
                message: format!("the code generator failed: {what}"),
            })
        })
    }

    fn compile_unguarded(table: &[KernelEntry]) -> Result<Kernels, KernelError> {
        if table.is_empty() {
            return Ok(Kernels::default());
        }
        let whole = |message: String| KernelError { kernel: 0, message };
        let mut flags = settings::builder();
        for (k, v) in [
            ("use_colocated_libcalls", "false"),
            ("is_pic", "false"),
            ("opt_level", "speed"),
        ] {
            flags
                .set(k, v)
                .map_err(|e| whole(format!("code generator setting {k}: {e}")))?;
        }
        let isa = cranelift_native::builder()
            .map_err(|e| whole(format!("this host cannot run GpSimd kernels: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| whole(format!("code generator setup: {e}")))?;
        let cc = isa.default_call_conv();
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        for h in HOST_FNS {
            if let Some(addr) = host_address(h.name) {
                builder.symbol(h.name, addr);
            }
        }
        let mut module = JITModule::new(builder);
        let mut hosts: HashMap<&str, FuncId> = HashMap::new();
        for h in HOST_FNS {
            let id = module
                .declare_function(h.name, Linkage::Import, &host_sig(h, cc))
                .map_err(|e| whole(format!("declaring host function {}: {e}", h.name)))?;
            hosts.insert(h.name, id);
        }
        let mut pending = Vec::new();
        let mut ctx = Context::new();
        for (i, entry) in table.iter().enumerate() {
            let fail = |message: String| KernelError { kernel: i, message };
            let mut f = parse_one(&entry.clif).map_err(fail)?;
            let (params, ret) = check_kernel(&f).map_err(fail)?;
            link(&mut f, cc, &|n| hosts.get(n).copied()).map_err(fail)?;
            let kid = module
                .declare_function(&format!("gpsimd_kernel{i}"), Linkage::Local, &f.signature)
                .map_err(|e| fail(e.to_string()))?;
            ctx.func = f;
            module
                .define_function(kid, &mut ctx)
                .map_err(|e| fail(format!("does not compile: {e:?}")))?;
            module.clear_context(&mut ctx);
            let mut row = parse_one(&row_driver_text(&params, ret))
                .map_err(|e| fail(format!("row driver: {e}")))?;
            link(&mut row, cc, &|n| (n == "kernel").then_some(kid)).map_err(fail)?;
            let rid = module
                .declare_function(&format!("gpsimd_row{i}"), Linkage::Local, &row.signature)
                .map_err(|e| fail(e.to_string()))?;
            ctx.func = row;
            module
                .define_function(rid, &mut ctx)
                .map_err(|e| fail(format!("row driver does not compile: {e:?}")))?;
            module.clear_context(&mut ctx);
            pending.push((params, ret, rid));
        }
        module
            .finalize_definitions()
            .map_err(|e| whole(format!("linking the kernels: {e}")))?;
        let compiled = pending
            .into_iter()
            .map(|(params, ret, rid)| {
                let ptr = module.get_finalized_function(rid);
                // SAFETY: `rid` was defined from `row_driver_text`, whose signature is
                // (i64, i64, i64, i64, i64) with no result in the host calling convention.
                let row = unsafe { std::mem::transmute::<*const u8, RowFn>(ptr) };
                Compiled { params, ret, row }
            })
            .collect();
        Ok(Kernels {
            module: Some(module),
            compiled,
        })
    }

    /// Checks that `x`'s accesses match its kernel's signature (the loader's half of the
    /// `kernel_index` constraint). The field at fault and the message on mismatch.
    pub fn check_inst(&self, x: &GpsimdKernel) -> Result<(), (String, String)> {
        let k = self.compiled.get(x.kernel as usize).ok_or_else(|| {
            (
                "kernel".to_string(),
                format!(
                    "kernel {} does not exist ({} kernels)",
                    x.kernel,
                    self.compiled.len()
                ),
            )
        })?;
        if k.params.len() != x.inputs as usize {
            return Err((
                "inputs".into(),
                format!(
                    "the instruction reads {} inputs but kernel {} takes {} parameters",
                    x.inputs,
                    x.kernel,
                    k.params.len()
                ),
            ));
        }
        for (i, (n, a)) in [("a", &x.a), ("b", &x.b), ("c", &x.c)]
            .iter()
            .take(k.params.len())
            .enumerate()
        {
            if Lane::of(a.dtype) != k.params[i] {
                return Err((
                    n.to_string(),
                    format!(
                        "a {} access reaches the kernel as {}, but parameter {i} of kernel {} is {}",
                        a.dtype.name(),
                        Lane::of(a.dtype).clif(),
                        x.kernel,
                        k.params[i].clif()
                    ),
                ));
            }
        }
        if Lane::of(x.dst.dtype) != k.ret {
            return Err((
                "dst".into(),
                format!(
                    "a {} destination takes {}, but kernel {} returns {}",
                    x.dst.dtype.name(),
                    Lane::of(x.dst.dtype).clif(),
                    x.kernel,
                    k.ret.clif()
                ),
            ));
        }
        Ok(())
    }
}

/// Reads an access as a lane array: i32 values for i32 accesses, else f32 bits.
fn read_lanes(mem: &Memories, name: &str, ap: &tahoma_isa::Ap) -> Result<Vec<u32>, Fault> {
    let plan = Plan::of_ap(ap).map_err(|f| f.within(name))?;
    let raw = gather_raw(mem.mem(plan.mem), &plan);
    let es = ap.dtype.size_bytes() as usize;
    Ok(raw
        .chunks_exact(es)
        .map(|b| match ap.dtype {
            Dtype::I32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            d => crate::access::decode(d, b).to_bits(),
        })
        .collect())
}

/// `GPSIMD_KERNEL`: runs the kernel over every element.
pub fn gpsimd_kernel(mem: &mut Memories, kernels: &Kernels, x: &GpsimdKernel) -> Result<(), Fault> {
    if let Err((field, message)) = kernels.check_inst(x) {
        return Err(Fault::new("E3007", field, message));
    }
    let k = &kernels.compiled[x.kernel as usize];
    let dst = Plan::of_ap(&x.dst).map_err(|f| f.within("dst"))?;
    let n = dst.count;
    let mut ins: Vec<Vec<u32>> = Vec::new();
    for (name, ap) in [("a", &x.a), ("b", &x.b), ("c", &x.c)]
        .into_iter()
        .take(k.params.len())
    {
        let v = read_lanes(mem, name, ap)?;
        super::expect_len(name, v.len(), n)?;
        ins.push(v);
    }
    let mut out = vec![0u32; n];
    let ptr = |i: usize| ins.get(i).map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: each non-null input array and `out` hold `n` lanes of the types the driver loads
    // and stores (checked against the kernel's signature above); unused inputs are never read.
    unsafe { (k.row)(ptr(0), ptr(1), ptr(2), out.as_mut_ptr(), n as u64) };
    let es = x.dst.dtype.size_bytes() as usize;
    let mut bytes = vec![0u8; n * es];
    for (lane, b) in out.iter().zip(bytes.chunks_exact_mut(es)) {
        match (k.ret, x.dst.dtype) {
            (Lane::I32, _) => b.copy_from_slice(&lane.to_le_bytes()),
            (Lane::F32, d) => encode(d, f32::from_bits(*lane), b),
        }
    }
    scatter_raw(mem.mem_mut(dst.mem), &dst, &bytes);
    Ok(())
}
