//! Data movement lowered to DMA access patterns between HBM tensors: `Transpose` (a permuted
//! read), `DepthToSpace` and `SpaceToDepth` (a permuted read of a 6-D view), `Expand` and the
//! broadcasts other ops need (reads with zero strides), and copies of aliased values into graph
//! outputs.

use super::tiles::{contiguous_strides, dma_strided, Dim};
use super::{node_error, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op, ValueId};
use crate::kernel::{HbmKind, KOp, Kernel, Stmt};

fn kernel(name: &str, op: &str, ops: Vec<KOp>) -> Kernel {
    Kernel {
        name: name.to_string(),
        op: op.to_string(),
        buffers: vec![],
        body: ops.into_iter().map(Stmt::Op).collect(),
    }
}

/// The dims of reading `input` (of `in_shape`) broadcast to `out_shape`, written contiguously.
pub fn broadcast_dims(in_shape: &[u64], out_shape: &[u64]) -> Vec<Dim> {
    let in_strides = contiguous_strides(in_shape);
    let out_strides = contiguous_strides(out_shape);
    let lead = out_shape.len() - in_shape.len();
    out_shape
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let src = if i < lead || in_shape[i - lead] == 1 {
                0
            } else {
                in_strides[i - lead]
            };
            Dim {
                size,
                src,
                dst: out_strides[i],
            }
        })
        .collect()
}

/// `v` broadcast to `shape`: its own placement when the shapes agree, otherwise a scratch
/// tensor filled by a broadcasting DMA kernel named after `node`.
pub fn broadcast_to(l: &mut Lowerer, node: &Node, v: ValueId, shape: &[u64]) -> Placed {
    let p = l.placed(v);
    if p.shape == shape {
        return p;
    }
    let name = l.new_tensor(
        &format!("{}_bcast", l.graph.value(v).name),
        p.dtype,
        shape.to_vec(),
        HbmKind::Scratch,
    );
    let mut ops = Vec::new();
    dma_strided(
        &p.tensor,
        0,
        &name,
        0,
        &broadcast_dims(&p.shape, shape),
        &mut ops,
    );
    l.push_kernel(kernel(&node.name, "Expand", ops));
    Placed {
        tensor: name,
        dtype: p.dtype,
        shape: shape.to_vec(),
    }
}

/// Copies an aliased graph output (a reshaped input, a constant, ...) into its own tensor.
pub fn copy_to_output(l: &mut Lowerer, v: ValueId) {
    let p = l.placed(v);
    let val = l.graph.value(v);
    let name = l.new_tensor(
        &val.name.clone(),
        p.dtype,
        p.shape.clone(),
        HbmKind::Output {
            io: val.name.clone(),
        },
    );
    let mut ops = Vec::new();
    dma_strided(
        &p.tensor,
        0,
        &name,
        0,
        &[Dim {
            size: p.elems(),
            src: 1,
            dst: 1,
        }],
        &mut ops,
    );
    let kname = format!("{}_copy", val.name);
    l.push_kernel(kernel(&kname, "Identity", ops));
}

/// The dims of `DepthToSpace` / `SpaceToDepth` on `[N, C, H, W]` (modes `DCR` and `CRD`): the
/// input viewed as a 6-D tensor, permuted, and written contiguously (ONNX's reshape-transpose-
/// reshape definition as one strided read).
fn block_dims(node: &Node, shape: &[u64]) -> Result<Vec<Dim>, Diagnostic> {
    let attr_err = |m| node_error(node, Code::BadAttribute, m);
    let b = node.attrs.int("blocksize").map_err(attr_err)?;
    let crd = node.attrs.str("mode").map_err(attr_err)? == "CRD";
    let (b, ok) = (b.max(1) as u64, b > 0 && shape.len() == 4);
    let bad = || {
        node_error(
            node,
            Code::BadAttribute,
            format!("blocksize {b} does not fit input shape {shape:?}"),
        )
    };
    if !ok {
        return Err(bad());
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let (view, perm): (Vec<u64>, [usize; 6]) = if node.op == Op::DepthToSpace {
        if c % (b * b) != 0 {
            return Err(bad());
        }
        let cc = c / (b * b);
        if crd {
            (vec![n, cc, b, b, h, w], [0, 1, 4, 2, 5, 3])
        } else {
            (vec![n, b, b, cc, h, w], [0, 3, 4, 1, 5, 2])
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return Err(bad());
        }
        let perm = if crd {
            [0, 1, 3, 5, 2, 4]
        } else {
            [0, 3, 5, 1, 2, 4]
        };
        (vec![n, c, h / b, b, w / b, b], perm)
    };
    let in_strides = contiguous_strides(&view);
    let out_shape: Vec<u64> = perm.iter().map(|&p| view[p]).collect();
    let out_strides = contiguous_strides(&out_shape);
    Ok(perm
        .iter()
        .enumerate()
        .map(|(i, &p)| Dim {
            size: out_shape[i],
            src: in_strides[p],
            dst: out_strides[i],
        })
        .collect())
}

/// Transpose, Expand, DepthToSpace and SpaceToDepth.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let out = l.place_output(node.outputs[0], node)?;
    let dims: Vec<Dim> = match node.op {
        Op::Transpose => {
            let perm = node
                .attrs
                .usizes("perm")
                .map_err(|m| node_error(node, Code::BadAttribute, m))?;
            let in_strides = contiguous_strides(&x.shape);
            let out_strides = contiguous_strides(&out.shape);
            perm.iter()
                .enumerate()
                .map(|(i, &p)| Dim {
                    size: out.shape[i],
                    src: in_strides[p],
                    dst: out_strides[i],
                })
                .collect()
        }
        Op::Expand => broadcast_dims(&x.shape, &out.shape),
        Op::DepthToSpace | Op::SpaceToDepth => block_dims(node, &x.shape)?,
        other => {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("{} is not a movement op", other.name()),
            ))
        }
    };
    let mut ops = Vec::new();
    dma_strided(&x.tensor, 0, &out.tensor, 0, &dims, &mut ops);
    l.push_kernel(kernel(&node.name, node.op.name(), ops));
    Ok(())
}
