//! The op set of the graph IR and the canonical form of each op's inputs and attributes.
//!
//! The importer canonicalises ONNX nodes into this form: every attribute is explicit (ONNX
//! defaults filled in), axes are non-negative, `auto_pad` is resolved into `pads`, and inputs
//! that control shapes (axes, pads, shape, repeats, slice bounds, split sizes, Resize scales,
//! Clip bounds) are moved from constant inputs into attributes. ONNX ops that only reshape
//! (`Flatten`, `Squeeze`, `Unsqueeze`) become [`Op::Reshape`]; `Dropout` (inference) becomes
//! [`Op::Identity`] (its mask a constant); `CastLike` becomes [`Op::Cast`]; `Constant`,
//! `ConstantOfShape`, `Shape`, `Size` and `Range` are folded away.
//!
//! Broadcasting ops follow ONNX (numpy) multidirectional broadcasting.

use std::fmt;

macro_rules! ops {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// An op of the graph IR. The doc of each variant gives its inputs, attributes
        /// (all required in canonical form) and outputs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            $($(#[$doc])* $name,)*
        }

        impl Op {
            /// Every op in declaration order.
            pub const ALL: &'static [Op] = &[$(Op::$name,)*];

            /// The op's name in the text form (the ONNX op type it corresponds to).
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$name => stringify!($name),)*
                }
            }
        }
    };
}

ops! {
    /// `(X, W[, B]) -> Y`. Attrs: `kernel_shape`, `strides`, `dilations` (ints, one per spatial
    /// dim), `pads` (ints, begins then ends), `group` (int).
    Conv,
    /// `(X, W[, B]) -> Y`. Attrs as [`Op::Conv`] plus `output_padding` (ints). `pads` already
    /// account for ONNX `output_shape`/`auto_pad`; they may be negative (an `output_shape`
    /// larger than the full output: the extra positions hold the bias).
    ConvTranspose,
    /// `(X, W[, B][, R]) -> Y`: a convolution with the epilogue the chip applies while the
    /// result leaves PSUM. Attrs as [`Op::Conv`] plus `activation` (string, a [`FusedAct`]
    /// name) and `residual` (int): 0 none, `Y = act(Conv(X, W, B))`; 1 before the activation,
    /// `Y = act(Conv(X, W, B) + R)`; 2 after it, `Y = act(Conv(X, W, B)) + R` (R, the last
    /// input, has Y's type). Made by the optimizer's fusion phase; not an ONNX op.
    FusedConv,
    /// `(A, B[, C[, R]]) -> Y`: a Gemm with an activation applied on its way out of PSUM,
    /// `Y = act(alpha * A' B' + beta * C)`. Attrs as [`Op::Gemm`] plus `activation` (string, a
    /// [`FusedAct`] name) and optionally `residual` (int, as [`Op::FusedConv`]'s: 1 adds the
    /// residual R, of Y's type, before the activation, 2 after it; R needs C). Made by the
    /// optimizer's fusion phase; not an ONNX op.
    FusedGemm,
    /// `(A, B) -> Y`, numpy matmul semantics (batch dims broadcast, 1-D operands promoted).
    MatMul,
    /// `(A, B[, C]) -> Y`. Attrs: `alpha`, `beta` (float), `transA`, `transB` (int 0/1).
    Gemm,
    /// `(A, B) -> C`, broadcasting.
    Add,
    /// `(A, B) -> C`, broadcasting.
    Sub,
    /// `(A, B) -> C`, broadcasting.
    Mul,
    /// `(A, B) -> C`, broadcasting (integer division truncates).
    Div,
    /// `(X, Y) -> Z`, broadcasting; Z has X's dtype.
    Pow,
    Sqrt,
    Exp,
    Log,
    Neg,
    Abs,
    Reciprocal,
    Relu,
    /// Attrs: `alpha` (float).
    LeakyRelu,
    Sigmoid,
    Tanh,
    Erf,
    /// Attrs: `approximate` (string `none` or `tanh`).
    Gelu,
    /// Attrs: `alpha`, `beta` (float).
    HardSigmoid,
    HardSwish,
    /// Attrs: optional `min`, `max` (float); an absent bound is unbounded.
    Clip,
    /// Attrs: `axis` (int, non-negative). ONNX-13 semantics (one axis).
    Softmax,
    /// Attrs: `axis` (int, non-negative).
    LogSoftmax,
    /// `(X, Scale[, B]) -> (Y[, Mean, InvStdDev])`. Attrs: `axis` (int, non-negative),
    /// `epsilon` (float), optional `num_outputs` (int 1 or 3, default 1). Mean and InvStdDev
    /// are float32 with X's shape, ones from `axis` on.
    LayerNormalization,
    /// `(X, scale, B, mean, var) -> Y` (inference). Attrs: `epsilon` (float).
    BatchNormalization,
    /// Attrs: `axes` (ints, sorted, non-negative, non-empty), `keepdims` (int 0/1).
    ReduceSum,
    /// As [`Op::ReduceSum`].
    ReduceMean,
    /// As [`Op::ReduceSum`].
    ReduceMax,
    /// As [`Op::ReduceSum`].
    ReduceMin,
    /// `X -> (Y[, Indices])`. Attrs: `kernel_shape`, `strides`, `dilations`, `pads`,
    /// `ceil_mode` (int), optional `num_outputs` (int 1 or 2, default 1) and `storage_order`
    /// (int 0/1, default 0) for the int64 Indices output.
    MaxPool,
    /// Attrs: `kernel_shape`, `strides`, `dilations`, `pads`, `ceil_mode`, `count_include_pad`.
    AveragePool,
    GlobalAveragePool,
    GlobalMaxPool,
    /// Attrs: `shape` (ints: the output shape, all entries non-negative).
    Reshape,
    /// Attrs: `perm` (ints).
    Transpose,
    /// Variadic inputs. Attrs: `axis` (int, non-negative).
    Concat,
    /// One input, N outputs. Attrs: `axis` (int, non-negative), `split` (ints, one size per output).
    Split,
    /// Attrs: `starts`, `ends`, `steps` (ints, one per input dim). Starts are clamped into the
    /// dim; ends into `[0, dim]` for positive steps and `[-1, dim-1]` for negative steps,
    /// where `-1` means "before index 0".
    Slice,
    /// Attrs: `shape` (ints: the output shape after broadcasting).
    Expand,
    /// Attrs: `repeats` (ints, one per dim).
    Tile,
    /// `(data, indices) -> Y`. Attrs: `axis` (int, non-negative). Negative indices count from the end.
    Gather,
    /// `(data, indices) -> Y`. Attrs: `batch_dims` (int).
    GatherND,
    /// `(cond, X, Y) -> Z`, broadcasting.
    Where,
    /// Comparison, broadcasting, bool result.
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    /// Logical ops on bool, broadcasting.
    And,
    Or,
    Xor,
    Not,
    IsNaN,
    /// Attrs: `detect_negative`, `detect_positive` (int 0/1).
    IsInf,
    Floor,
    Ceil,
    Sign,
    /// Attrs: `to` (type).
    Cast,
    Identity,
    /// Attrs: `mode` (`nearest` | `linear` | `cubic`), `coordinate_transformation_mode`
    /// (string), `nearest_mode` (string), `scales` (floats, one per dim: output/input for
    /// sizes-given models), `sizes` (ints: the output shape), `cubic_coeff_a`,
    /// `extrapolation_value` (float), `exclude_outside` (int), optional `antialias` (int 0/1,
    /// default 0) and `roi` (floats, begins then ends, one pair per dim; for
    /// `tf_crop_and_resize`).
    Resize,
    /// Attrs: `pads` (ints, 2 x rank: begins then ends; may be negative), `mode` (`constant` |
    /// `reflect` | `edge` | `wrap`), `value` (float, for `constant`).
    Pad,
    /// Variadic, broadcasting.
    Sum,
    /// Variadic, broadcasting.
    Max,
    /// Variadic, broadcasting.
    Min,
    /// Attrs: `alpha`, `beta`, `bias` (float), `size` (int).
    LRN,
    /// Attrs: `alpha` (float).
    Elu,
    /// Attrs: `alpha`, `gamma` (float).
    Selu,
    /// Attrs: `alpha` (float).
    Celu,
    /// Attrs: `alpha` (float).
    ThresholdedRelu,
    /// Attrs: `bias`, `lambd` (float). Takes float and integer operands.
    Shrink,
    Softplus,
    Softsign,
    /// Round half to even.
    Round,
    Sin,
    Cos,
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
    /// Attrs: `alpha` (float): `x * sigmoid(alpha * x)`.
    Swish,
    /// `(X, slope) -> Y`; slope broadcasts to X (unidirectional), Y has X's type.
    PRelu,
    /// `(A, B) -> C`, broadcasting. Attrs: `fmod` (int 0/1: the result takes the sign of
    /// the dividend when 1, of the divisor when 0).
    Mod,
    /// Attrs: `axis` (int, non-negative), `keepdims`, `select_last_index` (int 0/1). int64 result.
    ArgMax,
    /// As [`Op::ArgMax`].
    ArgMin,
    /// Attrs: `axis` (int, non-negative), `exclusive`, `reverse` (int 0/1).
    CumSum,
    /// `(data, indices) -> Y` with the indices' shape. Attrs: `axis` (int, non-negative).
    GatherElements,
    /// Attrs: `upper` (int 0/1), `k` (int: the diagonal).
    Trilu,
    /// Attrs: `axis` (int, non-negative). ONNX-13 semantics (one axis).
    Hardmax,
    /// `(X, scale, B) -> Y`. Attrs: `epsilon` (float).
    InstanceNormalization,
    /// Attrs: `blocksize` (int), `mode` (`DCR` | `CRD`).
    DepthToSpace,
    /// Attrs: `blocksize` (int), `mode` (`DCR` | `CRD`).
    SpaceToDepth,
    /// Attrs as [`Op::MaxPool`] plus `p` (int, the norm's exponent).
    LpPool,
}

impl Op {
    /// Parses a name printed by [`Op::name`].
    pub fn from_name(s: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == s)
    }

    /// Elementwise ops with one input whose output type equals the input type.
    pub fn is_unary_elementwise(self) -> bool {
        use Op::*;
        matches!(
            self,
            Sqrt | Exp
                | Log
                | Neg
                | Abs
                | Reciprocal
                | Relu
                | LeakyRelu
                | Sigmoid
                | Tanh
                | Erf
                | Gelu
                | HardSigmoid
                | HardSwish
                | Clip
                | Floor
                | Ceil
                | Sign
                | Identity
                | Elu
                | Selu
                | Celu
                | ThresholdedRelu
                | Shrink
                | Softplus
                | Softsign
                | Round
                | Sin
                | Cos
                | Tan
                | Asin
                | Acos
                | Atan
                | Sinh
                | Cosh
                | Asinh
                | Acosh
                | Atanh
                | Mish
                | Swish
        )
    }

    /// Broadcasting binary arithmetic ops whose output has the operands' dtype.
    pub fn is_binary_arith(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div)
    }

    /// Broadcasting comparisons (bool result).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Equal | Op::Less | Op::Greater | Op::LessOrEqual | Op::GreaterOrEqual
        )
    }

    pub fn is_reduce(self) -> bool {
        matches!(
            self,
            Op::ReduceSum | Op::ReduceMean | Op::ReduceMax | Op::ReduceMin
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The activation a fused kernel applies on its way out (the `activation` attribute of
/// [`Op::FusedConv`]); each is one function of the scalar engine's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FusedAct {
    None,
    Relu,
    Sigmoid,
    /// `x * sigmoid(x)`.
    Silu,
    Tanh,
    /// `Gelu` with `approximate = none`.
    Gelu,
    /// `Gelu` with `approximate = tanh`.
    GeluTanh,
}

impl FusedAct {
    pub const ALL: [FusedAct; 7] = [
        FusedAct::None,
        FusedAct::Relu,
        FusedAct::Sigmoid,
        FusedAct::Silu,
        FusedAct::Tanh,
        FusedAct::Gelu,
        FusedAct::GeluTanh,
    ];

    /// The attribute value naming it.
    pub fn name(self) -> &'static str {
        match self {
            FusedAct::None => "none",
            FusedAct::Relu => "relu",
            FusedAct::Sigmoid => "sigmoid",
            FusedAct::Silu => "silu",
            FusedAct::Tanh => "tanh",
            FusedAct::Gelu => "gelu",
            FusedAct::GeluTanh => "gelu_tanh",
        }
    }

    /// Parses an attribute value.
    pub fn parse(s: &str) -> Option<FusedAct> {
        FusedAct::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The activation of a single-input op, if it is one a fused kernel can apply.
    pub fn of_op(op: Op, attrs: &super::Attrs) -> Option<FusedAct> {
        Some(match op {
            Op::Relu => FusedAct::Relu,
            Op::Sigmoid => FusedAct::Sigmoid,
            Op::Tanh => FusedAct::Tanh,
            Op::Gelu => match attrs.str("approximate").ok()? {
                "none" => FusedAct::Gelu,
                "tanh" => FusedAct::GeluTanh,
                _ => return None,
            },
            _ => return None,
        })
    }
}
