//! Shape ops as DMA access patterns between HBM tensors: `Concat` and `Split` (copies at an
//! offset along the axis), `Slice` (start offsets and stepped, possibly negative, strides),
//! `Tile` (zero-stride repeat dims), `Gather` with constant indices (one copy per arithmetic run
//! of indices), `Resize` in nearest mode (a constant gather per resized axis; integer
//! up-sampling is one copy with zero-stride repeat dims) and `Pad` (the output filled from a
//! `MEMSET` tile for `constant`, then the input copied into the interior; `edge`, `reflect` and
//! `wrap` copy border planes from the output itself, one axis after the other).

use super::tiles::ELEMENTWISE_FREE_MAX;
use super::tiles::{contiguous_strides, dma_strided, flat_tiles, sbuf, tile, Dim};
use super::{node_error, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Buffer, Expr, HbmKind, KOp, Kernel, Stmt, View};
use tahoma_isa::machine;

fn attr_err(node: &Node) -> impl Fn(String) -> Diagnostic + '_ {
    move |m| node_error(node, Code::BadAttribute, m)
}

fn push(l: &mut Lowerer, name: &str, op: &str, buffers: Vec<Buffer>, ops: Vec<KOp>) {
    l.push_kernel(Kernel {
        name: name.to_string(),
        op: op.to_string(),
        buffers,
        body: ops.into_iter().map(Stmt::Op).collect(),
    });
}

/// Dims copying a whole tensor of `shape` with the given source and destination strides.
fn dims(shape: &[u64], src: &[i64], dst: &[i64]) -> Vec<Dim> {
    (0..shape.len())
        .map(|i| Dim {
            size: shape[i],
            src: src[i],
            dst: dst[i],
        })
        .collect()
}

/// Lowers a shape op.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    match node.op {
        Op::Concat => concat(l, node),
        Op::Split => split(l, node),
        Op::Slice => slice(l, node),
        Op::Tile => tile_op(l, node),
        Op::Gather => gather(l, node),
        Op::Resize => resize(l, node),
        Op::Pad => pad(l, node),
        other => Err(node_error(
            node,
            Code::NotLowered,
            format!("{} is not a shape op", other.name()),
        )),
    }
}

fn concat(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let axis = node.attrs.int("axis").map_err(attr_err(node))? as usize;
    let ins: Vec<Placed> = node.inputs.iter().map(|&v| l.placed(v)).collect();
    let out = l.place_output(node.outputs[0], node)?;
    let os = contiguous_strides(&out.shape);
    let mut ops = Vec::new();
    let mut at = 0i64;
    for x in &ins {
        if x.elems() > 0 {
            let d = dims(&x.shape, &contiguous_strides(&x.shape), &os);
            dma_strided(&x.tensor, 0, &out.tensor, at * os[axis], &d, &mut ops);
        }
        at += x.shape[axis] as i64;
    }
    push(l, &node.name, "Concat", vec![], ops);
    Ok(())
}

fn split(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let axis = node.attrs.int("axis").map_err(attr_err(node))? as usize;
    let x = l.placed(node.inputs[0]);
    let xs = contiguous_strides(&x.shape);
    let mut ops = Vec::new();
    let mut at = 0i64;
    for &o in &node.outputs {
        let out = l.place_output(o, node)?;
        if out.elems() > 0 {
            let d = dims(&out.shape, &xs, &contiguous_strides(&out.shape));
            dma_strided(&x.tensor, at * xs[axis], &out.tensor, 0, &d, &mut ops);
        }
        at += out.shape[axis] as i64;
    }
    push(l, &node.name, "Split", vec![], ops);
    Ok(())
}

fn slice(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let starts = node.attrs.ints("starts").map_err(attr_err(node))?.to_vec();
    let steps = node.attrs.ints("steps").map_err(attr_err(node))?.to_vec();
    let x = l.placed(node.inputs[0]);
    let out = l.place_output(node.outputs[0], node)?;
    let xs = contiguous_strides(&x.shape);
    let mut ops = Vec::new();
    if out.elems() > 0 {
        let off: i64 = (0..x.shape.len()).map(|i| starts[i] * xs[i]).sum();
        let src: Vec<i64> = (0..x.shape.len()).map(|i| steps[i] * xs[i]).collect();
        let d = dims(&out.shape, &src, &contiguous_strides(&out.shape));
        dma_strided(&x.tensor, off, &out.tensor, 0, &d, &mut ops);
    }
    push(l, &node.name, "Slice", vec![], ops);
    Ok(())
}

fn tile_op(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let out = l.place_output(node.outputs[0], node)?;
    let (xs, os) = (contiguous_strides(&x.shape), contiguous_strides(&out.shape));
    let mut d = Vec::new();
    for i in 0..x.shape.len() {
        let reps = out.shape[i] / x.shape[i].max(1);
        d.push(Dim {
            size: reps,
            src: 0,
            dst: os[i] * x.shape[i] as i64,
        });
        d.push(Dim {
            size: x.shape[i],
            src: xs[i],
            dst: os[i],
        });
    }
    let mut ops = Vec::new();
    if out.elems() > 0 {
        dma_strided(&x.tensor, 0, &out.tensor, 0, &d, &mut ops);
    }
    push(l, &node.name, "Tile", vec![], ops);
    Ok(())
}

/// Copies `x` to `out` gathering along `axis` at `idx` (one index per output position).
fn gather_axis(x: &Placed, out: &Placed, axis: usize, idx: &[i64], ops: &mut Vec<KOp>) {
    let outer: u64 = x.shape[..axis].iter().product();
    let inner: u64 = x.shape[axis + 1..].iter().product();
    let (a, k) = (x.shape[axis] as i64, idx.len() as i64);
    let inner_i = inner as i64;
    // Integer up-sampling (each index repeated r times in order): one copy.
    let r = (idx.len() as u64) / (a as u64).max(1);
    if r > 1
        && idx.len() as u64 == r * a as u64
        && idx
            .iter()
            .enumerate()
            .all(|(j, &i)| i == j as i64 / r as i64)
    {
        let d = [
            Dim {
                size: outer,
                src: a * inner_i,
                dst: k * inner_i,
            },
            Dim {
                size: a as u64,
                src: inner_i,
                dst: r as i64 * inner_i,
            },
            Dim {
                size: r,
                src: 0,
                dst: inner_i,
            },
            Dim {
                size: inner,
                src: 1,
                dst: 1,
            },
        ];
        dma_strided(&x.tensor, 0, &out.tensor, 0, &d, ops);
        return;
    }
    let mut j = 0;
    while j < idx.len() {
        let step = if j + 1 < idx.len() {
            idx[j + 1] - idx[j]
        } else {
            0
        };
        let mut len = 1;
        while j + len < idx.len() && idx[j + len] - idx[j + len - 1] == step {
            len += 1;
        }
        let d = [
            Dim {
                size: outer,
                src: a * inner_i,
                dst: k * inner_i,
            },
            Dim {
                size: len as u64,
                src: step * inner_i,
                dst: inner_i,
            },
            Dim {
                size: inner,
                src: 1,
                dst: 1,
            },
        ];
        dma_strided(
            &x.tensor,
            idx[j] * inner_i,
            &out.tensor,
            j as i64 * inner_i,
            &d,
            ops,
        );
        j += len;
    }
}

fn gather(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let axis = node.attrs.int("axis").map_err(attr_err(node))? as usize;
    let Some(ind) = l.graph.const_value(node.inputs[1]) else {
        return super::gather::lower(l, node);
    };
    let x = l.placed(node.inputs[0]);
    let a = x.shape[axis] as i64;
    let idx: Vec<i64> = ind
        .to_f32_vec()
        .iter()
        .map(|&i| {
            let i = i as i64;
            if i < 0 {
                i + a
            } else {
                i
            }
        })
        .collect();
    if let Some(bad) = idx.iter().find(|&&i| i < 0 || i >= a) {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!("index {bad} is outside an axis of {a}"),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    let mut ops = Vec::new();
    if out.elems() > 0 {
        gather_axis(&x, &out, axis, &idx, &mut ops);
    }
    push(l, &node.name, "Gather", vec![], ops);
    Ok(())
}

fn resize(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    use crate::interp::resize::{resize_explicit, CoordMode, NearestMode, ResizeParams};
    use crate::tensor::Tensor;
    let mode = node.attrs.str("mode").unwrap_or("nearest");
    if mode != "nearest" {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!("Resize mode `{mode}` is not lowered (nearest only)"),
        ));
    }
    let coord = node
        .attrs
        .str("coordinate_transformation_mode")
        .unwrap_or("half_pixel");
    let nearest = node
        .attrs
        .str("nearest_mode")
        .unwrap_or("round_prefer_floor");
    let (Some(coord), Some(nearest)) = (CoordMode::parse(coord), NearestMode::parse(nearest))
    else {
        return Err(node_error(node, Code::BadAttribute, "unknown Resize modes"));
    };
    if coord == CoordMode::TfCropAndResize {
        return Err(node_error(
            node,
            Code::NotLowered,
            "tf_crop_and_resize is not lowered",
        ));
    }
    let scales = node
        .attrs
        .floats("scales")
        .map_err(attr_err(node))?
        .to_vec();
    let params = ResizeParams {
        coord,
        nearest,
        ..Default::default()
    };
    let x = l.placed(node.inputs[0]);
    let out_shape: Vec<u64> = l.shape_u64(node.outputs[0]);
    // The source index of every output position along each axis, as the interpreter picks it.
    let mut maps = Vec::new();
    for i in 0..x.shape.len() {
        let (li, lo) = (x.shape[i] as usize, out_shape[i] as usize);
        let ramp: Vec<f32> = (0..li).map(|v| v as f32).collect();
        let t = Tensor::from_f32(crate::tensor::DType::F32, &[li], &ramp);
        let m = resize_explicit(&t, None, &[scales[i]], &[lo], &params)
            .map_err(|e| node_error(node, Code::BadAttribute, e.to_string()))?;
        maps.push(m.to_f32_vec().iter().map(|&v| v as i64).collect::<Vec<_>>());
    }
    let axes: Vec<usize> = (0..x.shape.len())
        .filter(|&i| {
            maps[i].len() != x.shape[i] as usize
                || maps[i].iter().enumerate().any(|(j, &v)| v != j as i64)
        })
        .collect();
    let out = l.place_output(node.outputs[0], node)?;
    let mut ops = Vec::new();
    let mut cur = x.clone();
    for (n, &ax) in axes.iter().enumerate() {
        let mut shape = cur.shape.clone();
        shape[ax] = out_shape[ax];
        let next = if n + 1 == axes.len() {
            out.clone()
        } else {
            let name = l.new_tensor(
                &format!("{}_axis{ax}", node.name),
                x.dtype,
                shape.clone(),
                HbmKind::Scratch,
            );
            Placed {
                tensor: name,
                dtype: x.dtype,
                shape,
            }
        };
        if next.elems() > 0 {
            gather_axis(&cur, &next, ax, &maps[ax], &mut ops);
        }
        cur = next;
    }
    if axes.is_empty() && out.elems() > 0 {
        dma_strided(
            &x.tensor,
            0,
            &out.tensor,
            0,
            &[Dim {
                size: out.elems(),
                src: 1,
                dst: 1,
            }],
            &mut ops,
        );
    }
    push(l, &node.name, "Resize", vec![], ops);
    Ok(())
}

/// Fills HBM tensor `t` of `n` elements with `value` from a memset SBUF tile named `fill`;
/// returns the ops and the tile's buffer.
pub fn fill(t: &str, n: u64, value: f32) -> (Vec<Stmt>, Buffer) {
    let tiles = flat_tiles(n, ELEMENTWISE_FREE_MAX);
    let p = machine::PARTITIONS.min(n.max(1));
    let f = tiles.free;
    let mut body = vec![Stmt::Op(KOp::Memset {
        dst: tile("fill", p, 0, f),
        value,
    })];
    if tiles.full > 0 {
        let step = (machine::PARTITIONS * f) as i64;
        body.push(Stmt::Loop {
            var: "t".into(),
            start: 0,
            end: tiles.full as i64,
            body: vec![Stmt::Op(KOp::Dma {
                dst: View::hbm(
                    t,
                    machine::PARTITIONS,
                    f as i64,
                    Expr::var("t", step),
                    vec![(f, 1)],
                ),
                src: tile("fill", machine::PARTITIONS, 0, f),
            })],
        });
    }
    for &(off, parts, free) in &tiles.rest {
        body.push(Stmt::Op(KOp::Dma {
            dst: View::hbm(
                t,
                parts,
                free as i64,
                Expr::constant(off as i64),
                vec![(free, 1)],
            ),
            src: tile("fill", parts, 0, free),
        }));
    }
    (body, sbuf("fill", p, f))
}

fn pad(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let pads = node.attrs.ints("pads").map_err(attr_err(node))?.to_vec();
    let mode = node.attrs.str("mode").unwrap_or("constant").to_string();
    let value = node.attrs.float("value").unwrap_or(0.0);
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if mode != "constant" && pads.iter().any(|&p| p < 0) {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!("negative pads in `{mode}` mode are not lowered"),
        ));
    }
    if mode == "reflect" && (0..rank).any(|i| pads[i].max(pads[i + rank]) >= x.shape[i] as i64) {
        return Err(node_error(
            node,
            Code::NotLowered,
            "reflect pads as wide as the axis are not lowered",
        ));
    }
    if !["constant", "edge", "reflect", "wrap"].contains(&mode.as_str()) {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("unknown Pad mode `{mode}`"),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    let (xs, os) = (contiguous_strides(&x.shape), contiguous_strides(&out.shape));
    let mut body = Vec::new();
    let mut buffers = Vec::new();
    if mode == "constant" && out.elems() > 0 && pads.iter().any(|&p| p > 0) {
        let (stmts, buf) = fill(&out.tensor, out.elems(), value);
        body.extend(stmts);
        buffers.push(buf);
    }
    // The interior: the input, cropped by negative pads.
    let mut ops = Vec::new();
    let (mut src_off, mut dst_off) = (0i64, 0i64);
    let mut inner = Vec::new();
    for i in 0..rank {
        let (b, e) = (pads[i], pads[i + rank]);
        src_off += (-b).max(0) * xs[i];
        dst_off += b.max(0) * os[i];
        let size = x.shape[i] as i64 - (-b).max(0) - (-e).max(0);
        inner.push(Dim {
            size: size.max(0) as u64,
            src: xs[i],
            dst: os[i],
        });
    }
    if inner.iter().all(|d| d.size > 0) {
        dma_strided(&x.tensor, src_off, &out.tensor, dst_off, &inner, &mut ops);
    }
    // Border planes of the other modes, axis by axis, copied within the output.
    if mode != "constant" {
        for ax in 0..rank {
            let (b, n) = (pads[ax], x.shape[ax] as i64);
            for j in (0..b).chain(b + n..out.shape[ax] as i64) {
                let i = j - b;
                let src_i = match mode.as_str() {
                    "edge" => i.clamp(0, n - 1),
                    "reflect" if i < 0 => -i,
                    "reflect" => 2 * (n - 1) - i,
                    _ => i.rem_euclid(n),
                };
                // Full extent along earlier axes (already padded), interior along later ones.
                let mut d = Vec::new();
                let mut base = 0i64;
                for k in 0..rank {
                    if k == ax {
                        continue;
                    }
                    if k < ax {
                        d.push(Dim {
                            size: out.shape[k],
                            src: os[k],
                            dst: os[k],
                        });
                    } else {
                        base += pads[k] * os[k];
                        d.push(Dim {
                            size: x.shape[k],
                            src: os[k],
                            dst: os[k],
                        });
                    }
                }
                dma_strided(
                    &out.tensor,
                    base + (b + src_i) * os[ax],
                    &out.tensor,
                    base + j * os[ax],
                    &d,
                    &mut ops,
                );
            }
        }
    }
    body.extend(ops.into_iter().map(Stmt::Op));
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "Pad".into(),
        buffers,
        body,
    });
    Ok(())
}
