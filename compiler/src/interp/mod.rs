//! Reference interpreter: the numerical oracle for every later stage of tahoma.
//!
//! Two layers:
//! * **Kernels** — pure functions over [`crate::tensor::Tensor`] with explicit parameter
//!   structs, independent of the graph IR, grouped by op family: [`elementwise`] (unary math
//!   and activations, broadcasting binary ops, comparisons, logic, `Where`, `Clip`, `Cast`),
//!   [`reduce`], [`normalize`] (softmax family, LayerNorm, BatchNorm, InstanceNorm, LRN),
//!   [`linalg`] (MatMul, Gemm), [`conv`] (im2col Conv, ConvTranspose), [`pool`],
//!   [`shape_ops`], [`index_ops`] (Gather family), [`resize`]; [`window`] holds the shared
//!   sliding-window geometry and [`value`] the error type, dtype conversions and broadcasting.
//! * **Dispatcher** — [`dispatch`]: [`run_graph`] / [`run_graph_named`] / [`evaluate`] run a
//!   [`crate::graph::Graph`] node by node; [`run_op`] maps one graph-IR op with its canonical
//!   attributes onto the kernels.
//!
//! Every entry point returns a [`Result`] whose [`InterpError`] names the op (and node) and
//! what is wrong; none panics on bad shapes or attributes. Half-precision values are computed
//! in f32 and rounded back (round to nearest even); floats accumulate in f32 for GEMMs and in
//! f64 for reductions and normalisations, except where [`precision`] (the per-op precision
//! policy) says an op reproduces the reference evaluator's step-by-step rounding.

pub mod conv;
pub mod dispatch;
pub mod elementwise;
pub mod index_ops;
pub mod linalg;
pub mod normalize;
pub mod pool;
pub mod precision;
pub mod reduce;
pub mod resize;
pub mod shape_ops;
pub mod value;
pub mod window;

pub use dispatch::{evaluate, run_graph, run_graph_named, run_op};
pub use value::{InterpError, Result};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dispatch;
