//! Host-side tensor values: the element types a graph can carry and an n-dimensional value of
//! one of them. Used for initializers, folded constants, interpreter inputs and outputs.

use half::{bf16, f16};
use ndarray::ArrayD;
use std::fmt;

/// Element type of a graph value. The names follow ONNX's `TensorProto.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    I64,
    I32,
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::Bool,
    ];

    /// The name used in the textual IRs and in ONNX text syntax (`float`, `bfloat16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::Bool => "bool",
        }
    }

    /// Parses a name printed by [`DType::name`].
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Size of one element in bytes as stored in memory (bool is one byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::BF16 => 16,
        }
    }

    /// Inverse of [`DType::onnx_code`]; `None` for ONNX types tahoma does not support.
    pub fn from_onnx_code(code: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.onnx_code() == code)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense n-dimensional value of one dtype (row-major, standard layout not required).
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

/// Applies the same expression to whichever array a [`Tensor`] holds.
#[macro_export]
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $body,
            $crate::tensor::Tensor::F16($a) => $body,
            $crate::tensor::Tensor::BF16($a) => $body,
            $crate::tensor::Tensor::I64($a) => $body,
            $crate::tensor::Tensor::I32($a) => $body,
            $crate::tensor::Tensor::Bool($a) => $body,
        }
    };
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F16(_) => DType::F16,
            Tensor::BF16(_) => DType::BF16,
            Tensor::I64(_) => DType::I64,
            Tensor::I32(_) => DType::I32,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All elements converted to f32 in row-major order (bool as 0/1, integers rounded to
    /// the nearest f32).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Tensor::F32(a) => a.iter().copied().collect(),
            Tensor::F16(a) => a.iter().map(|v| v.to_f32()).collect(),
            Tensor::BF16(a) => a.iter().map(|v| v.to_f32()).collect(),
            Tensor::I64(a) => a.iter().map(|&v| v as f32).collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as f32).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// All elements converted to i64 in row-major order (floats truncated toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::F16(a) => a.iter().map(|v| v.to_f32() as i64).collect(),
            Tensor::BF16(a) => a.iter().map(|v| v.to_f32() as i64).collect(),
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as i64).collect(),
        }
    }

    /// A zero-filled tensor of the given dtype and shape.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        let s = ndarray::IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::zeros(s)),
            DType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            DType::BF16 => Tensor::BF16(ArrayD::from_elem(s, bf16::ZERO)),
            DType::I64 => Tensor::I64(ArrayD::zeros(s)),
            DType::I32 => Tensor::I32(ArrayD::zeros(s)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
        }
    }

    /// Builds a tensor of `dtype` from f32 values (rounding to nearest for narrower floats,
    /// truncating for integers, nonzero for bool). `values.len()` must equal the shape's product.
    pub fn from_f32(dtype: DType, shape: &[usize], values: &[f32]) -> Tensor {
        fn arr<T>(shape: &[usize], v: Vec<T>) -> ArrayD<T> {
            ArrayD::from_shape_vec(ndarray::IxDyn(shape), v).expect("value count matches shape")
        }
        let v = values;
        match dtype {
            DType::F32 => Tensor::F32(arr(shape, v.to_vec())),
            DType::F16 => Tensor::F16(arr(shape, v.iter().map(|&x| f16::from_f32(x)).collect())),
            DType::BF16 => Tensor::BF16(arr(shape, v.iter().map(|&x| bf16::from_f32(x)).collect())),
            DType::I64 => Tensor::I64(arr(shape, v.iter().map(|&x| x as i64).collect())),
            DType::I32 => Tensor::I32(arr(shape, v.iter().map(|&x| x as i32).collect())),
            DType::Bool => Tensor::Bool(arr(shape, v.iter().map(|&x| x != 0.0).collect())),
        }
    }
}
