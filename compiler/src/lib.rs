//! tahoma's compiler: everything between a user's model and an instruction stream.
//!
//! The pipeline's stages live in their own modules; `tensor` holds the value type every
//! stage shares (initializers, folded constants, interpreter values).

pub mod codegen;
pub mod conformance;
pub mod diag;
pub mod driver;
pub mod graph;
pub mod interp;
pub mod kernel;
pub mod lower;
pub mod onnx;
pub mod onnx_text;
pub mod opt;
pub mod tensor;
