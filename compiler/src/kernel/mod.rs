//! The kernel IR (dump name `kernel`): what a graph becomes once every op is mapped onto the
//! chip's memories and engines, one level above instruction encodings.
//!
//! * A [`KernelProgram`] holds the HBM tensors (graph inputs, outputs, constants and scratch
//!   intermediates, `@name`) and the kernels, in execution order.
//! * A [`Kernel`] is the code of one graph node (its name is the ONNX node name, kept for
//!   provenance): on-chip buffers (`%name`, SBUF or PSUM, `partitions x free elements`) and a
//!   body of statements: engine ops and `for $v in a..b` loops.
//! * An op ([`KOp`]) is an ISA instruction whose operands are [`View`]s of buffers instead of
//!   addresses: `%buf[START,COUNT]+OFFSET(SIZE:STRIDE,...)`, with partition start and element
//!   offset affine in the loop variables ([`Expr`]). HBM views may add a partition stride:
//!   `@x[0,128;784]+128*$k(128:1)`. The buffer's dtype is the view's dtype; a DMA between views of
//!   different dtypes converts.
//! * GpSimd kernels (Cranelift IR functions, see [`tahoma_isa::gpsimd`]) live in one table of
//!   the program, `gpsimd_kernel N ops=K { CLIF }`; a `gpsimd` op names its entry.
//! * No semaphores, queues or addresses appear here: codegen ([`crate::codegen`]) allocates the
//!   buffers, unrolls the loops, orders the engines with semaphores and assigns DMA queues.
//!
//! [`text::print`] and [`text::parse`] give the deterministic text form; `parse(print(k)) == k`.

pub mod text;

use std::collections::BTreeMap;
use std::fmt;
pub use tahoma_isa::program::GpsimdKernel;
pub use tahoma_isa::{Act, Alu, Dtype, Mem, Reduce};

/// An affine integer expression over loop variables: `constant + sum coeff * $var`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Expr {
    pub constant: i64,
    /// (variable name without `$`, coefficient), sorted by name, no zero coefficients.
    pub terms: Vec<(String, i64)>,
}

impl Expr {
    pub fn constant(c: i64) -> Expr {
        Expr {
            constant: c,
            terms: vec![],
        }
    }
    /// `coeff * $var`.
    pub fn var(name: &str, coeff: i64) -> Expr {
        Expr::constant(0).plus_var(name, coeff)
    }
    /// Adds `coeff * $var`.
    pub fn plus_var(mut self, name: &str, coeff: i64) -> Expr {
        if coeff == 0 {
            return self;
        }
        match self.terms.iter().position(|t| t.0 == name) {
            Some(i) => {
                self.terms[i].1 += coeff;
                if self.terms[i].1 == 0 {
                    self.terms.remove(i);
                }
            }
            None => {
                self.terms.push((name.to_string(), coeff));
                self.terms.sort();
            }
        }
        self
    }
    /// Multiplies by a constant.
    pub fn scale(mut self, c: i64) -> Expr {
        self.constant *= c;
        for t in &mut self.terms {
            t.1 *= c;
        }
        self.terms.retain(|t| t.1 != 0);
        self
    }
    /// Adds a constant.
    pub fn plus(mut self, c: i64) -> Expr {
        self.constant += c;
        self
    }
    /// The value under `env` (variables not bound evaluate as an error naming them).
    pub fn eval(&self, env: &BTreeMap<String, i64>) -> Result<i64, String> {
        let mut v = self.constant;
        for (name, c) in &self.terms {
            let x = env
                .get(name)
                .ok_or_else(|| format!("loop variable ${name} is not bound here"))?;
            v += c * x;
        }
        Ok(v)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, c) in &self.terms {
            match (*c, first) {
                (1, true) => write!(f, "${name}")?,
                (1, false) => write!(f, "+${name}")?,
                (-1, _) => write!(f, "-${name}")?,
                (c, true) => write!(f, "{c}*${name}")?,
                (c, false) if c < 0 => write!(f, "{c}*${name}")?,
                (c, false) => write!(f, "+{c}*${name}")?,
            }
            first = false;
        }
        if first {
            write!(f, "{}", self.constant)
        } else if self.constant > 0 {
            write!(f, "+{}", self.constant)
        } else if self.constant < 0 {
            write!(f, "{}", self.constant)
        } else {
            Ok(())
        }
    }
}

/// What an HBM tensor is to the program.
#[derive(Clone, Debug, PartialEq)]
pub enum HbmKind {
    /// A graph input, fed by the host; `io` is its (ONNX) name.
    Input { io: String },
    /// A graph output, read back by the host.
    Output { io: String },
    /// Weights or other constants, row-major values (converted to the tensor's dtype).
    Const { values: Vec<f32> },
    /// An intermediate produced and consumed on chip.
    Scratch,
}

/// A dense row-major tensor in HBM.
#[derive(Clone, Debug, PartialEq)]
pub struct HbmTensor {
    /// Identifier in the IR (`@name`).
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub kind: HbmKind,
}

impl HbmTensor {
    pub fn elems(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// An on-chip buffer: `partitions x free` elements of `dtype` in SBUF or PSUM.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// Identifier in the IR (`%name`).
    pub name: String,
    pub mem: Mem,
    pub dtype: Dtype,
    pub partitions: u64,
    pub free: u64,
}

/// What a view looks into.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Base {
    Hbm(String),
    Buf(String),
}

/// A strided window into an HBM tensor or an on-chip buffer; offsets and strides in elements.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub base: Base,
    pub part_start: Expr,
    pub part_count: u64,
    /// Elements between consecutive partitions (HBM only; 0 on chip).
    pub part_stride: i64,
    pub offset: Expr,
    /// Free dims, outermost first: (size, stride).
    pub dims: Vec<(u64, i64)>,
}

impl View {
    /// A view of an on-chip buffer.
    pub fn buf(
        name: &str,
        part_start: u64,
        part_count: u64,
        offset: Expr,
        dims: Vec<(u64, i64)>,
    ) -> View {
        View {
            base: Base::Buf(name.into()),
            part_start: Expr::constant(part_start as i64),
            part_count,
            part_stride: 0,
            offset,
            dims,
        }
    }
    /// A view of an HBM tensor.
    pub fn hbm(
        name: &str,
        part_count: u64,
        part_stride: i64,
        offset: Expr,
        dims: Vec<(u64, i64)>,
    ) -> View {
        View {
            base: Base::Hbm(name.into()),
            part_start: Expr::constant(0),
            part_count,
            part_stride,
            offset,
            dims,
        }
    }
    pub fn free_elems(&self) -> u64 {
        self.dims.iter().map(|d| d.0).product()
    }
}

/// A scalar operand: an immediate or one value per partition.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarArg {
    Imm(f32),
    PerPartition(View),
}

/// When a MATMUL accumulates into PSUM instead of overwriting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accumulate {
    Never,
    Always,
    /// Overwrite on the first iteration of loop `$var` (its start value), accumulate after.
    AfterFirst(String),
}

/// An engine op over views (the ISA's vocabulary without addresses or semaphores).
#[derive(Clone, Debug, PartialEq)]
pub enum KOp {
    Dma {
        dst: View,
        src: View,
    },
    /// An indirect DMA: partition p of `dst` receives row `index[p]` of a table of `rows` rows
    /// in HBM, `src` being row 0 (its partition stride the row stride).
    DmaGather {
        dst: View,
        src: View,
        index: View,
        rows: u64,
    },
    LoadStationary {
        src: View,
    },
    Matmul {
        dst: View,
        moving: View,
        acc: Accumulate,
    },
    Activate {
        dst: View,
        src: View,
        func: Act,
        scale: ScalarArg,
        bias: ScalarArg,
        acc: Option<View>,
    },
    TensorTensor {
        dst: View,
        a: View,
        b: View,
        op: Alu,
    },
    TensorScalar {
        dst: View,
        src: View,
        op0: Alu,
        scalar0: ScalarArg,
        op1: Alu,
        scalar1: ScalarArg,
        reverse0: bool,
        reverse1: bool,
    },
    Reduce {
        dst: View,
        src: View,
        op: Reduce,
        axes: u64,
        negate: bool,
    },
    Copy {
        dst: View,
        src: View,
    },
    Memset {
        dst: View,
        value: f32,
    },
    Select {
        dst: View,
        pred: View,
        on_true: View,
        on_false: View,
    },
    Iota {
        dst: View,
        base: i64,
        part_step: i64,
        steps: Vec<i64>,
    },
    Transpose32 {
        dst: View,
        src: View,
    },
    /// `dst = k(srcs...)` elementwise on the GpSimd engine, `k` entry `kernel` of
    /// [`KernelProgram::gpsimd`]; up to 3 sources, all in SBUF.
    Gpsimd {
        dst: View,
        srcs: Vec<View>,
        kernel: u32,
    },
}

/// A statement of a kernel body.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // ops dominate bodies; boxing every op would cost more than loops waste
pub enum Stmt {
    Op(KOp),
    /// `for $var in start..end { body }`.
    Loop {
        var: String,
        start: i64,
        end: i64,
        body: Vec<Stmt>,
    },
}

/// The code of one graph node.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// ONNX node name (provenance of every instruction it becomes).
    pub name: String,
    /// The graph op it implements (`MatMul`, `Relu`, ...).
    pub op: String,
    pub buffers: Vec<Buffer>,
    pub body: Vec<Stmt>,
}

/// A whole program in kernel IR.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KernelProgram {
    pub tensors: Vec<HbmTensor>,
    pub kernels: Vec<Kernel>,
    /// The GpSimd kernel table (CLIF functions that `gpsimd` ops call), shared by all kernels.
    pub gpsimd: Vec<GpsimdKernel>,
}

impl KernelProgram {
    /// The index of `k` in the GpSimd kernel table, adding it when new (equal kernels share
    /// one entry).
    pub fn intern_gpsimd(&mut self, k: GpsimdKernel) -> u32 {
        match self.gpsimd.iter().position(|x| *x == k) {
            Some(i) => i as u32,
            None => {
                self.gpsimd.push(k);
                (self.gpsimd.len() - 1) as u32
            }
        }
    }
    pub fn tensor(&self, name: &str) -> Option<&HbmTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

impl Kernel {
    pub fn buffer(&self, name: &str) -> Option<&Buffer> {
        self.buffers.iter().find(|b| b.name == name)
    }
}
