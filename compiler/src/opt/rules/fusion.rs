//! Fusion (the hook for issue 5's fused kernels): matmul/conv epilogues applied while
//! evacuating PSUM (bias, activation, scale, residual add), fused elementwise chains, and
//! softmax/layernorm/GELU recognised as single kernels.
//!
//! Only rules whose result today's lowering can execute belong here, and today's lowering has
//! no fused kernel beyond what Gemm already offers (bias and scale, which the algebra phase
//! folds into Gemm). The phase therefore runs with no rules until the lowering gains fused
//! kernels; the runner still reports it, so `-O1` and `--opt-report` keep their shape.

use super::Rule;

/// The fusion rules (none yet; see the module doc).
pub fn rules() -> Vec<Rule> {
    Vec::new()
}
