//! Reference interpreter: the numerical oracle for every later stage of tahoma.
//!
//! The kernels are pure functions over [`crate::tensor::Tensor`] with explicit parameter
//! structs, independent of the graph IR; each returns a [`Result`] whose [`InterpError`]
//! names the op and what is wrong, and none panics on bad shapes. Half-precision values are
//! computed in f32 and rounded back. Submodules are grouped by op family.

pub mod conv;
pub mod dispatch;
pub mod elementwise;
pub mod index_ops;
pub mod linalg;
pub mod normalize;
pub mod pool;
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
