//! The host-side tensor the runtime hands in and out: a dtype, a shape and the values as f32
//! (bf16/fp16 widen exactly; i32 values are integers held in f32, exact up to 2^24).

use tahoma_isa::Dtype;

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Row-major (C order) values.
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(dtype: Dtype, shape: Vec<u64>, data: Vec<f32>) -> Tensor {
        Tensor { dtype, shape, data }
    }
    /// Number of elements the shape holds.
    pub fn elems(&self) -> u64 {
        self.shape.iter().product()
    }
    /// `dtype[d0, d1, ...]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        format!("{}[{}]", self.dtype.name(), dims.join(", "))
    }
}
