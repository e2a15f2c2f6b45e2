//! `Resize` in `linear` and `cubic` modes (with antialiasing, `exclude_outside` and every
//! coordinate transformation), and `tf_crop_and_resize` in any mode, as matmuls on the tensor
//! engine. The interpreter resizes one axis at a time, each output position a weighted sum of
//! input positions (or the extrapolation value): per resized axis that is `y = M x + c` with a
//! constant `[out, in]` matrix `M` and a constant column `c`. Both are computed at compile time
//! by running the interpreter's own resize on the unit vectors (and on zeros) of that axis, so
//! the weights are exactly the interpreter's.
//!
//! Axes are applied in the interpreter's order through fp32 HBM intermediates. For an axis with
//! the tensor viewed as `[outer, L, inner]`, the input positions go on partitions (tiles of
//! `pe_rows`), `outer x inner` on the free axis in blocks of `max_moving_free`; `M^T` is the
//! stationary operand, stored only as its non-zero `[L tile, O tile]` blocks (interpolation
//! matrices are banded), and PSUM accumulates over the L tiles; `c` is one more accumulation
//! step, a one-partition stationary row times a row of ones. Runs in fp32 whatever the compiled
//! precision (a resize is not a matmul of the model). Slabs, PSUM and result tiles alternate
//! between two copies so consecutive blocks overlap.

use super::tiles::sbuf;
use super::{node_error, HbmKind, Lowerer, Placed};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::interp::resize::{resize_explicit, CoordMode, NearestMode, ResizeMode, ResizeParams};
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use crate::tensor::{DType, Tensor};
use tahoma_isa::{machine, Act, Dtype, Mem};

/// SBUF bytes per partition of the stored matrix blocks of one axis (a tiling choice).
const MATRIX_BYTES: u64 = 64 * 1024;
/// SBUF bytes per partition of the input slabs (two copies; a tiling choice).
const SLAB_BYTES: u64 = 64 * 1024;

/// Whether `node` (a Resize) is lowered here rather than as DMA gathers.
pub fn handles(node: &Node) -> bool {
    let mode = node.attrs.str("mode").unwrap_or("nearest");
    let coord = node
        .attrs
        .str("coordinate_transformation_mode")
        .unwrap_or("half_pixel");
    mode != "nearest" || coord == "tf_crop_and_resize"
}

fn attr_err(node: &Node) -> impl Fn(String) -> Diagnostic + '_ {
    move |m| node_error(node, Code::BadAttribute, m)
}

/// One resized axis: `y = m x + c`, `m` row-major `[lo, li]`.
struct Axis {
    axis: usize,
    li: u64,
    lo: u64,
    m: Vec<f32>,
    c: Vec<f32>,
}

fn v(name: &str, parts: u64, off: u64, free: u64) -> View {
    View::buf(name, 0, parts, Expr::constant(off as i64), vec![(free, 1)])
}

fn params(node: &Node) -> Result<ResizeParams, Diagnostic> {
    let a = &node.attrs;
    let s = |k: &str, d: &'static str| -> Result<String, Diagnostic> {
        match a.get(k) {
            None => Ok(d.to_string()),
            Some(_) => a.str(k).map(str::to_string).map_err(attr_err(node)),
        }
    };
    let f = |k: &str, d: f32| -> Result<f32, Diagnostic> {
        match a.get(k) {
            None => Ok(d),
            Some(_) => a.float(k).map_err(attr_err(node)),
        }
    };
    let i = |k: &str| -> Result<i64, Diagnostic> {
        match a.get(k) {
            None => Ok(0),
            Some(_) => a.int(k).map_err(attr_err(node)),
        }
    };
    let (mode, coord, nearest) = (
        s("mode", "nearest")?,
        s("coordinate_transformation_mode", "half_pixel")?,
        s("nearest_mode", "round_prefer_floor")?,
    );
    let bad =
        |what: &str, v: &str| node_error(node, Code::BadAttribute, format!("unknown {what} `{v}`"));
    Ok(ResizeParams {
        mode: ResizeMode::parse(&mode).ok_or_else(|| bad("mode", &mode))?,
        coord: CoordMode::parse(&coord)
            .ok_or_else(|| bad("coordinate_transformation_mode", &coord))?,
        nearest: NearestMode::parse(&nearest).ok_or_else(|| bad("nearest_mode", &nearest))?,
        cubic_coeff_a: f("cubic_coeff_a", -0.75)?,
        exclude_outside: i("exclude_outside")? != 0,
        extrapolation_value: f("extrapolation_value", 0.0)?,
        antialias: i("antialias")? != 0,
        ..Default::default()
    })
}

/// The resized axes of `node` with their matrices, in the interpreter's order.
fn axes(node: &Node, x: &[u64], y: &[u64]) -> Result<Vec<Axis>, Diagnostic> {
    let p = params(node)?;
    let scales = node
        .attrs
        .floats("scales")
        .map_err(attr_err(node))?
        .to_vec();
    let roi = match node.attrs.get("roi") {
        Some(_) => Some(node.attrs.floats("roi").map_err(attr_err(node))?.to_vec()),
        None => None,
    };
    let rank = x.len();
    if scales.len() != rank || y.len() != rank {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("scales {scales:?} do not match the rank of {x:?}"),
        ));
    }
    let mut out = Vec::new();
    for a in 0..rank {
        let (li, lo) = (x[a] as usize, y[a] as usize);
        if lo == li && scales[a] == 1.0 && p.coord != CoordMode::TfCropAndResize {
            continue;
        }
        if li == 0 || lo == 0 {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("Resize of an empty axis ({li} -> {lo}) is not lowered"),
            ));
        }
        let roi1 = roi.as_ref().map(|r| [r[a], r[rank + a]]);
        let run = |vals: &[f32]| -> Result<Vec<f32>, Diagnostic> {
            let t = Tensor::from_f32(DType::F32, &[li], vals);
            resize_explicit(&t, roi1.as_ref().map(|r| &r[..]), &[scales[a]], &[lo], &p)
                .map(|r| r.to_f32_vec())
                .map_err(|e| node_error(node, Code::BadAttribute, e.to_string()))
        };
        let c = run(&vec![0.0; li])?;
        let mut m = vec![0f32; lo * li];
        let mut unit = vec![0f32; li];
        for j in 0..li {
            unit[j] = 1.0;
            let col = run(&unit)?;
            unit[j] = 0.0;
            for i in 0..lo {
                m[i * li + j] = col[i] - c[i];
            }
        }
        let identity = li == lo
            && c.iter().all(|&v| v == 0.0)
            && (0..lo).all(|i| (0..li).all(|j| m[i * li + j] == if i == j { 1.0 } else { 0.0 }));
        if !identity {
            out.push(Axis {
                axis: a,
                li: li as u64,
                lo: lo as u64,
                m,
                c,
            });
        }
    }
    Ok(out)
}

/// Buffer sizes the passes need, and the alternation of double-buffered tiles.
#[derive(Default)]
struct Sizes {
    w_cols: u64,
    slab: u64,
    bias_cols: u64,
    nb: u64,
    parity: usize,
}

/// Emits one axis pass from `src` (`[outer, li, inner]`) to `dst` (`[outer, lo, inner]`).
fn pass(
    l: &mut Lowerer,
    node: &Node,
    ax: &Axis,
    src: &Placed,
    dst: &Placed,
    body: &mut Vec<Stmt>,
    sizes: &mut Sizes,
) -> Result<(), Diagnostic> {
    let (k_max, m_max) = (machine::PE_ROWS, machine::PE_COLS);
    let outer: u64 = src.shape[..ax.axis].iter().product();
    let inner: u64 = src.shape[ax.axis + 1..].iter().product();
    let (li, lo) = (ax.li, ax.lo);
    let split = |n: u64, t: u64| -> Vec<(u64, u64)> {
        (0..n.div_ceil(t))
            .map(|i| (i * t, t.min(n - i * t)))
            .collect()
    };
    let (lt, ot) = (split(li, k_max), split(lo, m_max));
    // Non-zero blocks of M^T: (L tile, O tile, column in the packed constant).
    let mut blocks = Vec::new();
    let mut cols = 0;
    for (o, &(o0, on)) in ot.iter().enumerate() {
        for (j, &(l0, ln)) in lt.iter().enumerate() {
            let nz =
                (o0..o0 + on).any(|i| (l0..l0 + ln).any(|jj| ax.m[(i * li + jj) as usize] != 0.0));
            if nz {
                blocks.push((j, o, cols));
                cols += on;
            }
        }
    }
    let f32b = Dtype::Fp32.size_bytes();
    if cols * f32b > MATRIX_BYTES {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!("the interpolation matrix of axis {} ({li} -> {lo}) needs {cols} columns on chip; at most {} fit", ax.axis, MATRIX_BYTES / f32b),
        ));
    }
    let rows = li.min(k_max);
    let mut packed = vec![0f32; (rows * cols.max(1)) as usize];
    for &(j, o, col) in &blocks {
        let ((l0, ln), (o0, on)) = (lt[j], ot[o]);
        for a in 0..ln {
            for b in 0..on {
                packed[(a * cols + col + b) as usize] = ax.m[((o0 + b) * li + l0 + a) as usize];
            }
        }
    }
    let has_bias = ax.c.iter().any(|&v| v != 0.0);
    let nb = machine::MAX_MOVING_FREE
        .min(SLAB_BYTES / (2 * lt.len() as u64 * f32b))
        .max(1);
    sizes.nb = sizes.nb.max(nb);
    sizes.slab = sizes.slab.max(lt.len() as u64 * nb);
    sizes.w_cols = sizes.w_cols.max(cols);
    let w_t = (cols > 0).then(|| {
        l.new_tensor(
            &format!("{}_axis{}_w", node.name, ax.axis),
            Dtype::Fp32,
            vec![rows, cols],
            HbmKind::Const { values: packed },
        )
    });
    let mut emit = |op: KOp| body.push(Stmt::Op(op));
    if let Some(w) = &w_t {
        emit(KOp::Dma {
            dst: v("w", rows, 0, cols),
            src: View::hbm(w, rows, cols as i64, Expr::constant(0), vec![(cols, 1)]),
        });
    }
    if has_bias {
        sizes.bias_cols = sizes.bias_cols.max(lo);
        let c_t = l.new_tensor(
            &format!("{}_axis{}_c", node.name, ax.axis),
            Dtype::Fp32,
            vec![1, lo],
            HbmKind::Const {
                values: ax.c.clone(),
            },
        );
        emit(KOp::Dma {
            dst: v("cb", 1, 0, lo),
            src: View::hbm(&c_t, 1, lo as i64, Expr::constant(0), vec![(lo, 1)]),
        });
        emit(KOp::Memset {
            dst: v("ones", 1, 0, nb),
            value: 1.0,
        });
    }
    // Free blocks: `k` outer rows of `n` inner elements each.
    let mut free_blocks = Vec::new();
    if inner <= nb {
        let k = (nb / inner).max(1);
        for (o0, kk) in split(outer, k) {
            free_blocks.push((o0, kk, 0, inner));
        }
    } else {
        for o0 in 0..outer {
            for (n0, nn) in split(inner, nb) {
                free_blocks.push((o0, 1, n0, nn));
            }
        }
    }
    for (o0, k, n0, n) in free_blocks {
        let big_n = k * n;
        let xs = format!("x{}", sizes.parity % 2);
        for (j, &(l0, ln)) in lt.iter().enumerate() {
            emit(KOp::Dma {
                dst: View::buf(
                    &xs,
                    0,
                    ln,
                    Expr::constant((j as u64 * nb) as i64),
                    vec![(k, n as i64), (n, 1)],
                ),
                src: View::hbm(
                    &src.tensor,
                    ln,
                    inner as i64,
                    Expr::constant(((o0 * li + l0) * inner + n0) as i64),
                    vec![(k, (li * inner) as i64), (n, 1)],
                ),
            });
        }
        sizes.parity += 1;
        for (o, &(i0, on)) in ot.iter().enumerate() {
            let (acc, y) = (
                format!("acc{}", sizes.parity % 2),
                format!("y{}", sizes.parity % 2),
            );
            sizes.parity += 1;
            let mine: Vec<(usize, u64)> = blocks
                .iter()
                .filter(|b| b.1 == o)
                .map(|b| (b.0, b.2))
                .collect();
            let steps = mine.len() + usize::from(has_bias);
            let mut step = 0;
            let acc_flag = |s: usize| {
                if s == 0 {
                    Accumulate::Never
                } else {
                    Accumulate::Always
                }
            };
            for &(j, col) in &mine {
                emit(KOp::LoadStationary {
                    src: v("w", lt[j].1, col, on),
                });
                emit(KOp::Matmul {
                    dst: v(&acc, on, 0, big_n),
                    moving: v(&xs, lt[j].1, j as u64 * nb, big_n),
                    acc: acc_flag(step),
                });
                step += 1;
            }
            if has_bias {
                emit(KOp::LoadStationary {
                    src: v("cb", 1, i0, on),
                });
                emit(KOp::Matmul {
                    dst: v(&acc, on, 0, big_n),
                    moving: v("ones", 1, 0, big_n),
                    acc: acc_flag(step),
                });
            }
            if steps == 0 {
                emit(KOp::Memset {
                    dst: v(&y, on, 0, big_n),
                    value: 0.0,
                });
            } else {
                emit(KOp::Activate {
                    dst: v(&y, on, 0, big_n),
                    src: v(&acc, on, 0, big_n),
                    func: Act::Identity,
                    scale: ScalarArg::Imm(1.0),
                    bias: ScalarArg::Imm(0.0),
                    acc: None,
                });
            }
            emit(KOp::Dma {
                dst: View::hbm(
                    &dst.tensor,
                    on,
                    inner as i64,
                    Expr::constant(((o0 * lo + i0) * inner + n0) as i64),
                    vec![(k, (lo * inner) as i64), (n, 1)],
                ),
                src: View::buf(&y, 0, on, Expr::constant(0), vec![(k, n as i64), (n, 1)]),
            });
        }
    }
    Ok(())
}

/// Lowers a Resize node (see [`handles`]).
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let mode = node.attrs.str("mode").unwrap_or("nearest");
    if mode != "nearest" && !l.graph.ty(node.inputs[0]).dtype.is_float() {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "integer Resize in `{mode}` mode (rounding interpolated values) is not lowered"
            ),
        ));
    }
    let y_shape: Vec<u64> = l.shape_u64(node.outputs[0]);
    let list = axes(node, &x.shape, &y_shape)?;
    let out = l.place_output(node.outputs[0], node)?;
    let mut body = Vec::new();
    let mut sizes = Sizes::default();
    let mut cur = x.clone();
    if list.is_empty() && out.elems() > 0 {
        let mut ops = Vec::new();
        super::tiles::dma_strided(
            &x.tensor,
            0,
            &out.tensor,
            0,
            &[super::tiles::Dim {
                size: out.elems(),
                src: 1,
                dst: 1,
            }],
            &mut ops,
        );
        body.extend(ops.into_iter().map(Stmt::Op));
    }
    for (k, ax) in list.iter().enumerate() {
        let mut shape = cur.shape.clone();
        shape[ax.axis] = ax.lo;
        let next = if k + 1 == list.len() {
            out.clone()
        } else {
            let name = l.new_tensor(
                &format!("{}_axis{}", node.name, ax.axis),
                Dtype::Fp32,
                shape.clone(),
                HbmKind::Scratch,
            );
            Placed {
                tensor: name,
                dtype: Dtype::Fp32,
                shape,
            }
        };
        if next.elems() > 0 {
            pass(l, node, ax, &cur, &next, &mut body, &mut sizes)?;
        }
        cur = next;
    }
    let (pk, pm) = (machine::PE_ROWS, machine::PE_COLS);
    let mut buffers = Vec::new();
    if sizes.w_cols > 0 {
        buffers.push(sbuf("w", pk, sizes.w_cols));
    }
    if sizes.bias_cols > 0 {
        buffers.push(sbuf("cb", 1, sizes.bias_cols));
        buffers.push(sbuf("ones", 1, sizes.nb));
    }
    if sizes.nb > 0 {
        for i in 0..2 {
            buffers.push(sbuf(&format!("x{i}"), pk, sizes.slab));
            buffers.push(Buffer {
                name: format!("acc{i}"),
                mem: Mem::Psum,
                dtype: Dtype::Fp32,
                partitions: pm,
                free: sizes.nb,
            });
            buffers.push(sbuf(&format!("y{i}"), pm, sizes.nb));
        }
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "Resize".into(),
        buffers,
        body,
    });
    Ok(())
}
