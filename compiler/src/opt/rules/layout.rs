//! Layout (the hook for issue 5's layout choices): which axis sits on the partitions, and
//! transposes absorbed by swapping the stationary and moving operands of the tensor engine.
//!
//! Today's lowering fixes the layout of every kernel, and the transposes it can absorb (into
//! Gemm's transA/transB) are already rewritten by the algebra phase, so this phase has no
//! rules yet. It runs (and is reported) so that adding a rule here needs no other change.

use super::Rule;

/// The layout rules (none yet; see the module doc).
pub fn rules() -> Vec<Rule> {
    Vec::new()
}
