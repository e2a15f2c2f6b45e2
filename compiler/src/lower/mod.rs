//! Lowering: graph IR -> kernel IR. Every graph node becomes one kernel (named after the ONNX
//! node, so every instruction keeps its provenance) that reads its operands from HBM, computes on
//! the engines and writes its result back to HBM; views (Reshape, Identity, Dropout) become
//! aliases of their input's HBM tensor and cost nothing.
//!
//! Modules, one per op family: [`elementwise`] (activations on the scalar engine, arithmetic on
//! the vector engine), [`matmul`] (MatMul/Gemm on the tensor engine with K accumulated in PSUM),
//! [`movement`] (transposes and broadcasts as DMA access patterns), [`normalize`] (Softmax,
//! LogSoftmax, LayerNormalization, InstanceNormalization, BatchNormalization), [`reduce`]
//! (Reduce* and global pools),
//! [`conv`] (Conv as matmuls over kernel positions accumulating in PSUM), [`conv_transpose`]
//! (ConvTranspose as one stride-1 correlation per output phase; both read their attributes with
//! [`conv_attrs`]),
//! [`pool`] (MaxPool, AveragePool on the vector engine, separably), [`shape_ops`] (Concat,
//! Split, Slice, Tile, Gather, nearest Resize, Pad as DMA access patterns), [`gather`] and
//! [`gathernd`] (run-time-index gathers as one-hot matmuls), [`gather_elements`] (compare,
//! select and sum on the vector engine), [`argmax`] (ArgMax, ArgMin, Hardmax), [`trilu`]
//! (triangle masks from IOTA; DepthToSpace/SpaceToDepth are [`movement`]), [`resize`]
//! (linear/cubic Resize as matmuls with constant interpolation matrices), [`lrn`] (LRN with a
//! band-matrix matmul over channels), [`rounding`] (Floor, Ceil, Round, IsNaN, IsInf).
//! [`tiles`] holds the tiling helpers they share.
//!
//! A node no family handles is reported with [`Code::NotLowered`], all such nodes at once.

pub mod argmax;
pub mod conv;
pub mod conv_attrs;
pub mod conv_transpose;
pub mod elementwise;
pub mod epilogue;
pub mod gather;
pub mod gather_elements;
pub mod gather_rows;
pub mod gathernd;
pub mod gpsimd;
pub mod lrn;
pub mod matmul;
pub mod movement;
pub mod normalize;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod rounding;
pub mod shape_ops;
pub mod tiles;
pub mod trilu;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::graph::{Graph, Node, Op, ValueId};
use crate::kernel::{HbmKind, HbmTensor, Kernel, KernelProgram};
use crate::tensor::DType;
use std::collections::HashMap;
use tahoma_isa::Dtype;

/// Precision of tensor-engine operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Matmul/conv operands in bf16, fp32 accumulation; fp32 elsewhere (the default).
    #[default]
    Bf16,
    /// Everything in fp32 (the tensor engine at its fp32 rate).
    Fp32,
}

impl Precision {
    /// Dtype of tensor-engine operands.
    pub fn operand_dtype(self) -> Dtype {
        match self {
            Precision::Bf16 => Dtype::Bf16,
            Precision::Fp32 => Dtype::Fp32,
        }
    }
}

/// Options of lowering.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowerOptions {
    pub precision: Precision,
}

/// The chip dtype holding a graph dtype. The chip has no 64-bit integers or booleans: int64
/// values (token ids, masks, shapes) are held as i32 and booleans as i32 0/1; the host converts
/// at the program's inputs and outputs, and constants that do not fit are refused.
pub fn chip_dtype(d: DType) -> Option<Dtype> {
    match d {
        DType::F32 => Some(Dtype::Fp32),
        DType::F16 => Some(Dtype::Fp16),
        DType::BF16 => Some(Dtype::Bf16),
        DType::I32 | DType::I64 | DType::Bool => Some(Dtype::I32),
    }
}

/// Integers the chip's i32 holds exactly once arithmetic goes through fp32 (2^24).
pub const EXACT_INT_LIMIT: f32 = 16_777_216.0;

/// Where a graph value lives: an HBM tensor (possibly shared by aliases) and its own shape.
#[derive(Clone, Debug)]
pub struct Placed {
    pub tensor: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
}

impl Placed {
    pub fn elems(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// State shared by the op lowerings of one graph.
pub struct Lowerer<'g> {
    pub graph: &'g Graph,
    pub opts: LowerOptions,
    pub program: KernelProgram,
    placed: HashMap<ValueId, Placed>,
    /// Constants already converted to another dtype (weights at operand precision).
    converted: HashMap<(ValueId, Dtype), String>,
    next_tensor: usize,
}

/// An error about `node`.
pub fn node_error(node: &Node, code: Code, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(code, msg).at_node(node.name.clone(), node.op.name())
}

impl<'g> Lowerer<'g> {
    fn new_tensor(&mut self, hint: &str, dtype: Dtype, shape: Vec<u64>, kind: HbmKind) -> String {
        let clean: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let name = format!("t{}_{clean}", self.next_tensor);
        self.next_tensor += 1;
        self.program.tensors.push(HbmTensor {
            name: name.clone(),
            dtype,
            shape,
            kind,
        });
        name
    }

    /// The HBM placement of value `v`: graph inputs and node outputs are placed before the nodes
    /// reading them run; constants are placed (in their own dtype) on first use.
    pub fn placed(&mut self, v: ValueId) -> Placed {
        if let Some(p) = self.placed.get(&v) {
            return p.clone();
        }
        let dtype = chip_dtype(self.graph.ty(v).dtype).expect("placeable() was checked");
        let p = self.const_as(v, dtype).expect("placeable() was checked");
        self.placed.insert(v, p.clone());
        p
    }

    /// The placement of `v` for an operand the engines want in `dtype`: constants are stored
    /// converted (weights at the compiled precision); other values keep their dtype and the DMA
    /// that loads them converts.
    pub fn operand(&mut self, v: ValueId, dtype: Dtype) -> Placed {
        if self.graph.const_value(v).is_some() {
            if let Some(p) = self.const_as(v, dtype) {
                return p;
            }
        }
        self.placed(v)
    }

    /// Whether `v` has (or can get) an HBM placement: constants must have a chip dtype and, if
    /// integer, values the chip's i32 holds exactly.
    fn placeable(&self, v: ValueId) -> bool {
        if self.placed.contains_key(&v) {
            return true;
        }
        let Some(t) = self.graph.const_value(v) else {
            return false;
        };
        t.dtype().is_float()
            || t.to_i64_vec()
                .iter()
                .all(|&x| (x.unsigned_abs() as f32) <= EXACT_INT_LIMIT)
    }

    /// A constant graph value converted to `dtype` (e.g. weights stored at the compiled
    /// precision), placed as its own HBM constant once.
    pub fn const_as(&mut self, v: ValueId, dtype: Dtype) -> Option<Placed> {
        let t = self.graph.const_value(v)?;
        let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
        if let Some(name) = self.converted.get(&(v, dtype)) {
            return Some(Placed {
                tensor: name.clone(),
                dtype,
                shape,
            });
        }
        let values = t.to_f32_vec();
        let name = self.new_tensor(
            &self.graph.value(v).name.clone(),
            dtype,
            shape.clone(),
            HbmKind::Const { values },
        );
        self.converted.insert((v, dtype), name.clone());
        Some(Placed {
            tensor: name,
            dtype,
            shape,
        })
    }

    /// Places a node output in a fresh HBM tensor (scratch, or the graph output it is).
    pub fn place_output(&mut self, v: ValueId, node: &Node) -> Result<Placed, Diagnostic> {
        let val = self.graph.value(v);
        let dtype = chip_dtype(val.ty.dtype).ok_or_else(|| {
            node_error(
                node,
                Code::NotLowered,
                format!(
                    "produces {} values; the chip computes fp32, bf16, fp16 and i32",
                    val.ty.dtype
                ),
            )
        })?;
        let shape: Vec<u64> = self.shape_u64(v);
        let kind = match self.graph.outputs.iter().position(|&o| o == v) {
            Some(_) => HbmKind::Output {
                io: val.name.clone(),
            },
            None => HbmKind::Scratch,
        };
        // An intermediate the tensor engine writes (through PSUM evacuation and row stores)
        // and only the tensor engine reads is stored at the operand dtype: its readers convert
        // it on load anyway, so no result changes and its traffic shrinks. A max pool between
        // them keeps that (rounding commutes with max), and so do attention probabilities (a
        // Softmax computes in fp32 and its store converts). (Other producers keep fp32: some
        // pick slower layouts for narrow element stores.)
        let opd = self.opts.precision.operand_dtype();
        let dtype = if kind == HbmKind::Scratch
            && dtype == Dtype::Fp32
            && opd.size_bytes() < dtype.size_bytes()
            && matches!(
                node.op,
                Op::Conv
                    | Op::FusedConv
                    | Op::MatMul
                    | Op::Gemm
                    | Op::FusedGemm
                    | Op::MaxPool
                    | Op::Softmax
            )
            && self.operand_only(v)
        {
            opd
        } else {
            dtype
        };
        let name = self.new_tensor(&val.name.clone(), dtype, shape.clone(), kind);
        let p = Placed {
            tensor: name,
            dtype,
            shape,
        };
        self.placed.insert(v, p.clone());
        Ok(p)
    }

    /// Whether `v` has readers and every one (through views) takes it only as a tensor-engine
    /// operand: a convolution's input, a matrix product's A or B. Those loads convert to the
    /// operand dtype, rounding as a store at that dtype would.
    fn operand_only(&self, v: ValueId) -> bool {
        if self.graph.outputs.contains(&v) {
            return false;
        }
        let mut read = false;
        for node in &self.graph.nodes {
            for (i, _) in node.inputs.iter().enumerate().filter(|(_, &x)| x == v) {
                read = true;
                let ok = match node.op {
                    Op::Conv | Op::FusedConv => i == 0,
                    Op::MatMul | Op::Gemm | Op::FusedGemm => i < 2,
                    Op::Reshape | Op::Identity => i == 0 && self.operand_only(node.outputs[0]),
                    // Rounding is monotone, so the max of rounded values is the rounded max:
                    // a max pool read only as an operand may read and write the operand dtype.
                    Op::MaxPool => {
                        i == 0 && node.outputs.len() == 1 && self.operand_only(node.outputs[0])
                    }
                    _ => false,
                };
                if !ok {
                    return false;
                }
            }
        }
        read
    }

    /// The shape of graph value `v` in the `u64` extents the kernel IR uses.
    pub fn shape_u64(&self, v: ValueId) -> Vec<u64> {
        self.graph.ty(v).shape.iter().map(|&d| d as u64).collect()
    }

    /// Makes `out` an alias of `input`'s storage with `out`'s shape (no kernel).
    pub fn alias(&mut self, out: ValueId, input: ValueId) {
        let mut p = self.placed(input);
        p.shape = self.shape_u64(out);
        self.placed.insert(out, p);
    }

    pub fn push_kernel(&mut self, k: Kernel) {
        self.program.kernels.push(k);
    }
}

/// Lowers a whole graph. Reports every node that cannot be lowered, all at once.
pub fn lower(graph: &Graph, opts: LowerOptions) -> Result<KernelProgram, Diagnostics> {
    let mut l = Lowerer {
        graph,
        opts,
        program: KernelProgram::default(),
        placed: HashMap::new(),
        converted: HashMap::new(),
        next_tensor: 0,
    };
    let mut errors = Vec::new();
    for &v in &graph.inputs {
        let val = graph.value(v);
        match chip_dtype(val.ty.dtype) {
            Some(dtype) => {
                let shape: Vec<u64> = l.shape_u64(v);
                let name = l.new_tensor(
                    &val.name.clone(),
                    dtype,
                    shape.clone(),
                    HbmKind::Input {
                        io: val.name.clone(),
                    },
                );
                l.placed.insert(
                    v,
                    Placed {
                        tensor: name,
                        dtype,
                        shape,
                    },
                );
            }
            None => errors.push(Diagnostic::new(
                Code::NotLowered,
                format!(
                    "graph input `{}` is {}; the chip takes fp32, bf16, fp16 and i32 inputs",
                    val.name, val.ty.dtype
                ),
            )),
        }
    }
    // A node that fails still gets its outputs placed where their dtype allows, so the nodes
    // after it are lowered (and their own problems reported); values that cannot be placed are
    // `failed`, and nodes reading them are skipped rather than blamed for them.
    let mut failed: std::collections::HashSet<ValueId> = std::collections::HashSet::new();
    for node in &graph.nodes {
        // Constant indices of a Gather are read at compile time, never placed.
        let held = |k: usize| {
            !(node.op == Op::Gather && k == 1 && graph.const_value(node.inputs[1]).is_some())
        };
        let missing: Vec<ValueId> = node
            .inputs
            .iter()
            .enumerate()
            .filter(|&(k, &i)| held(k) && !l.placeable(i))
            .map(|(_, &i)| i)
            .collect();
        if !missing.is_empty() {
            if !missing.iter().all(|v| failed.contains(v)) {
                let bad: Vec<String> = missing
                    .iter()
                    .filter(|v| !failed.contains(v))
                    .map(|&i| format!("`{}` ({})", graph.value(i).name, graph.ty(i)))
                    .collect();
                errors.push(node_error(
                    node,
                    Code::NotLowered,
                    format!("reads {} which the chip cannot hold", bad.join(", ")),
                ));
            }
            failed.extend(node.outputs.iter().copied());
            continue;
        }
        let r = match node.op {
            Op::Identity | Op::Reshape => {
                l.alias(node.outputs[0], node.inputs[0]);
                Ok(())
            }
            Op::MatMul | Op::Gemm | Op::FusedGemm => matmul::lower(&mut l, node),
            Op::Conv | Op::FusedConv => conv::lower(&mut l, node),
            Op::ConvTranspose => conv_transpose::lower(&mut l, node),
            Op::MaxPool | Op::AveragePool | Op::LpPool => pool::lower(&mut l, node),
            Op::Transpose | Op::Expand | Op::DepthToSpace | Op::SpaceToDepth => {
                movement::lower(&mut l, node)
            }
            Op::Softmax
            | Op::LogSoftmax
            | Op::LayerNormalization
            | Op::InstanceNormalization
            | Op::BatchNormalization => normalize::lower(&mut l, node),
            Op::ReduceSum
            | Op::ReduceMean
            | Op::ReduceMax
            | Op::ReduceMin
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool => reduce::lower(&mut l, node),
            Op::LRN => lrn::lower(&mut l, node),
            Op::ArgMax | Op::ArgMin | Op::Hardmax => argmax::lower(&mut l, node),
            Op::Trilu => trilu::lower(&mut l, node),
            Op::GatherND => gathernd::lower(&mut l, node),
            Op::GatherElements => gather_elements::lower(&mut l, node),
            Op::Resize if resize::handles(node) => resize::lower(&mut l, node),
            Op::Floor | Op::Ceil | Op::Round | Op::IsNaN | Op::IsInf => {
                rounding::lower(&mut l, node)
            }
            Op::Concat | Op::Split | Op::Slice | Op::Tile | Op::Gather | Op::Resize | Op::Pad => {
                shape_ops::lower(&mut l, node)
            }
            _ => elementwise::lower(&mut l, node),
        };
        // Every output someone needs must have been produced (a lowering that handles only the
        // first output of a multi-output node must not leave the others silently missing).
        let r = r.and_then(|()| {
            let needed = |o: ValueId| {
                graph.outputs.contains(&o) || graph.nodes.iter().any(|n| n.inputs.contains(&o))
            };
            match node
                .outputs
                .iter()
                .position(|&o| !l.placeable(o) && needed(o))
            {
                Some(k) => Err(node_error(
                    node,
                    Code::NotLowered,
                    format!(
                        "output {k} (`{}`) is not computed on the chip yet",
                        graph.value(node.outputs[k]).name
                    ),
                )),
                None => Ok(()),
            }
        });
        if let Err(e) = r {
            errors.push(e);
            for &o in &node.outputs {
                if !l.placeable(o) && l.place_output(o, node).is_err() {
                    failed.insert(o);
                }
            }
        }
    }
    // Graph outputs that alias an input, a constant or another output need their own copy.
    for &o in &graph.outputs {
        let is_own_output = l.placed.get(&o).is_some_and(|p| {
            l.program.tensor(&p.tensor).is_some_and(
                |t| matches!(&t.kind, HbmKind::Output { io } if *io == graph.value(o).name),
            )
        });
        if !is_own_output && l.placeable(o) {
            movement::copy_to_output(&mut l, o);
        }
    }
    if errors.is_empty() {
        Ok(l.program)
    } else {
        Err(Diagnostics(errors))
    }
}
