//! The attributes and shapes of a convolution-like node (`Conv`, `FusedConv`, `ConvTranspose`),
//! read once for both convolution lowerings, in the canonical 3-D form (D, H, W) they work in:
//! a 1-D or 2-D node's missing leading axes have extent, kernel, stride and dilation 1 and no
//! padding.

use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;

/// A convolution-like node's geometry; spatial arrays are indexed (D, H, W).
#[derive(Clone, Debug)]
pub(super) struct ConvAttrs {
    /// Spatial axes of the node (1, 2 or 3).
    pub nsp: usize,
    pub kernel: [u64; 3],
    pub strides: [u64; 3],
    pub dilations: [u64; 3],
    /// Begin pads (negative ones crop, as ConvTranspose allows).
    pub pads: [i64; 3],
    /// The `group` attribute (at least 1).
    pub groups: u64,
    /// Spatial extents of the input and of the output.
    pub x: [u64; 3],
    pub y: [u64; 3],
    /// The weights' shape.
    pub w_shape: Vec<u64>,
}

/// An ints attribute of `node`.
fn ints(node: &Node, name: &str) -> Result<Vec<i64>, Diagnostic> {
    node.attrs
        .ints(name)
        .map(|v| v.to_vec())
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

impl ConvAttrs {
    /// Reads `node`'s attributes and shapes. Its input has rank 3 to 5 (the caller checks,
    /// with its own message), otherwise the node is refused with [`Code::NotLowered`].
    pub fn read(l: &Lowerer, node: &Node) -> Result<ConvAttrs, Diagnostic> {
        let x_shape = l.shape_u64(node.inputs[0]);
        let rank = x_shape.len();
        if !(3..=5).contains(&rank) {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("a convolution of rank {rank} (1 to 3 spatial axes are lowered)"),
            ));
        }
        let nsp = rank - 2;
        let lead = 3 - nsp;
        // Axis `i` of the canonical form from a per-spatial-axis list (`one` for a missing
        // leading axis or a short list).
        let three = |v: &[i64], one: i64| -> [i64; 3] {
            std::array::from_fn(|i| {
                if i < lead {
                    one
                } else {
                    v.get(i - lead).copied().unwrap_or(one)
                }
            })
        };
        let unsigned = |v: [i64; 3]| v.map(|e| e.max(1) as u64);
        let spatial = |s: &[u64]| three(&s[2..].iter().map(|&d| d as i64).collect::<Vec<_>>(), 1);
        let groups = node
            .attrs
            .int("group")
            .map_err(|m| node_error(node, Code::BadAttribute, m))?
            .max(1) as u64;
        Ok(ConvAttrs {
            nsp,
            kernel: unsigned(three(&ints(node, "kernel_shape")?, 1)),
            strides: unsigned(three(&ints(node, "strides")?, 1)),
            dilations: unsigned(three(&ints(node, "dilations")?, 1)),
            pads: three(&ints(node, "pads")?, 0),
            groups,
            x: spatial(&x_shape).map(|d| d as u64),
            y: spatial(&l.shape_u64(node.outputs[0])).map(|d| d as u64),
            w_shape: l.shape_u64(node.inputs[1]),
        })
    }
}
