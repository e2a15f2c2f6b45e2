//! The epilogue of a tensor-engine kernel: what happens to a result tile on its way out of
//! PSUM. A plain `Conv` only adds its per-channel bias; an [`Op::FusedConv`] (made by the
//! optimizer's fusion phase) also applies an activation from the scalar engine's table and adds
//! a residual before or after it, so the whole chain is one pass over the tile instead of
//! separate kernels with HBM round trips in between.

use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{FusedAct, Node, Op};
use crate::kernel::{KOp, ScalarArg, View};
use tahoma_isa::{Act, Alu};

/// Where a residual operand joins the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResidualAt {
    /// `act(acc + bias + r)`.
    BeforeAct,
    /// `act(acc + bias) + r`.
    AfterAct,
}

/// The epilogue of one node.
#[derive(Clone, Debug)]
pub struct Epilogue {
    pub act: Act,
    /// The residual's HBM tensor (laid out like the result) and where it joins.
    pub residual: Option<(String, ResidualAt)>,
}

/// The scalar-engine function of a fused node's `activation` attribute (identity for a node
/// that has none).
pub fn fused_act(node: &Node) -> Result<Act, Diagnostic> {
    if !matches!(node.op, Op::FusedConv | Op::FusedGemm) {
        return Ok(Act::Identity);
    }
    let bad = |m: String| node_error(node, Code::BadAttribute, m);
    let name = node.attrs.str("activation").map_err(bad)?;
    Ok(
        match FusedAct::parse(name).ok_or_else(|| bad(format!("unknown activation '{name}'")))? {
            FusedAct::None => Act::Identity,
            FusedAct::Relu => Act::Relu,
            FusedAct::Sigmoid => Act::Sigmoid,
            FusedAct::Silu => Act::Silu,
            FusedAct::Tanh => Act::Tanh,
            FusedAct::Gelu => Act::Gelu,
            FusedAct::GeluTanh => Act::GeluTanh,
        },
    )
}

impl Epilogue {
    /// The epilogue of a `Conv`, `FusedConv`, `Gemm` or `FusedGemm` node, and how many of its
    /// inputs belong to the product itself (`X, W[, B]`, `A, B[, C]`).
    pub fn of_node(l: &mut Lowerer, node: &Node) -> Result<(Epilogue, usize), Diagnostic> {
        if !matches!(node.op, Op::FusedConv | Op::FusedGemm) {
            return Ok((
                Epilogue {
                    act: Act::Identity,
                    residual: None,
                },
                node.inputs.len(),
            ));
        }
        let bad = |m: String| node_error(node, Code::BadAttribute, m);
        let act = fused_act(node)?;
        // FusedConv always states its residual mode; FusedGemm only when it has one.
        let mode = match node.attrs.get("residual") {
            None if node.op == Op::FusedGemm => 0,
            _ => node.attrs.int("residual").map_err(bad)?,
        };
        let at = match mode {
            0 => None,
            1 => Some(ResidualAt::BeforeAct),
            2 => Some(ResidualAt::AfterAct),
            r => return Err(bad(format!("residual must be 0, 1 or 2, got {r}"))),
        };
        let n_conv = node.inputs.len() - usize::from(at.is_some());
        let residual = match (at, node.inputs.last()) {
            (Some(at), Some(&r)) => Some((l.placed(r).tensor, at)),
            _ => None,
        };
        Ok((Epilogue { act, residual }, n_conv))
    }

    /// The instructions that move the accumulated tile `acc` (PSUM) to `dst` (SBUF, fp32):
    /// `bias` is per partition (or an immediate); `res` is the residual tile, already in SBUF
    /// and shaped like `dst`, when the epilogue has one.
    pub fn evacuate(
        &self,
        dst: &View,
        acc: &View,
        bias: ScalarArg,
        res: Option<&View>,
    ) -> Vec<KOp> {
        let activate = |src: &View| KOp::Activate {
            dst: dst.clone(),
            src: src.clone(),
            func: self.act,
            scale: ScalarArg::Imm(1.0),
            bias: bias.clone(),
            acc: None,
        };
        let add = |a: &View, r: &View| KOp::TensorTensor {
            dst: dst.clone(),
            a: a.clone(),
            b: r.clone(),
            op: Alu::Add,
        };
        match (&self.residual, res) {
            (Some((_, ResidualAt::BeforeAct)), Some(r)) => vec![add(acc, r), activate(dst)],
            (Some((_, ResidualAt::AfterAct)), Some(r)) => vec![activate(acc), add(dst, r)],
            _ => vec![activate(acc)],
        }
    }
}
