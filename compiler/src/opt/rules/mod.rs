//! Rewrite rules, one module per phase of the staged runner ([`crate::opt::runner`]):
//! [`canon`] (canonicalise), [`algebra`], [`fusion`], [`layout`], [`tiling`]. Every rule is a pattern over
//! [`TNode`] and an applier that checks the rule's condition on the analysis (types, constants,
//! attributes) and builds the right-hand side with [`add_op`](super::analysis::add_op), so an
//! ill-typed node never enters the e-graph. No rule introduces structure from a bare variable
//! (`?x => ...`) and none is a general associativity or commutativity law.
//!
//! [`all_rules`] lists every rule with its phase; the soundness tests (`tests/opt_rules.rs`)
//! check that each one has a numerical test.

pub mod algebra;
pub mod canon;
pub mod fusion;
pub mod layout;
pub mod tiling;

use super::analysis::{OptEGraph, TensorAnalysis};
use super::lang::TNode;
use crate::graph::{AttrValue, Attrs};
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

/// A rewrite of the optimizer's e-graph.
pub type Rule = Rewrite<TNode, TensorAnalysis>;

/// An applier from a function of (e-graph, matched class, substitution) that checks the
/// condition and builds the right-hand side, returning its class (or `None` when the condition does not hold).
pub struct FnApplier<F>(pub F);

impl<F> Applier<TNode, TensorAnalysis> for FnApplier<F>
where
    F: Fn(&mut OptEGraph, Id, &Subst) -> Option<Id> + Send + Sync,
{
    fn apply_one(
        &self,
        eg: &mut OptEGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<TNode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        match (self.0)(eg, eclass, subst) {
            Some(id) if eg.union(eclass, id) => vec![eclass],
            _ => Vec::new(),
        }
    }
}

/// A pattern variable (`"?x"`).
pub fn var(name: &str) -> Var {
    name.parse().expect("pattern variable names start with '?'")
}

/// A rule from a pattern (written in this module's sources; a typo is a programming error that
/// every test run catches) and an applier function.
pub fn rule<F>(name: &str, pattern: &str, f: F) -> Rule
where
    F: Fn(&mut OptEGraph, Id, &Subst) -> Option<Id> + Send + Sync + 'static,
{
    let p: Pattern<TNode> = pattern
        .parse()
        .unwrap_or_else(|e| panic!("rule {name}: bad pattern {pattern}: {e}"));
    Rewrite::new(name, p, FnApplier(f)).unwrap_or_else(|e| panic!("rule {name}: {e}"))
}

/// The optimizer phases, in the order the runner runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Canonicalise,
    Algebra,
    Fusion,
    Layout,
    Tiling,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Canonicalise,
        Phase::Algebra,
        Phase::Fusion,
        Phase::Layout,
        Phase::Tiling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Canonicalise => "canonicalise",
            Phase::Algebra => "algebra",
            Phase::Fusion => "fusion",
            Phase::Layout => "layout",
            Phase::Tiling => "tiling",
        }
    }

    /// The phase's rules.
    pub fn rules(self) -> Vec<Rule> {
        match self {
            Phase::Canonicalise => canon::rules(),
            Phase::Algebra => algebra::rules(),
            Phase::Fusion => fusion::rules(),
            Phase::Layout => layout::rules(),
            Phase::Tiling => tiling::rules(),
        }
    }
}

/// Every rule name with its phase.
pub fn all_rules() -> Vec<(Phase, String)> {
    Phase::ALL
        .iter()
        .flat_map(|&p| p.rules().into_iter().map(move |r| (p, r.name.to_string())))
        .collect()
}

/// Attribute helpers shared by the rule modules.
pub(crate) fn perm_of(a: &Attrs) -> Option<Vec<usize>> {
    a.usizes("perm").ok()
}

pub(crate) fn is_identity(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &d)| i == d)
}

/// Gemm's canonical attributes.
pub(crate) fn gemm_attrs(alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Attrs {
    Attrs::new()
        .with("alpha", AttrValue::Float(alpha))
        .with("beta", AttrValue::Float(beta))
        .with("transA", AttrValue::Int(trans_a as i64))
        .with("transB", AttrValue::Int(trans_b as i64))
}
