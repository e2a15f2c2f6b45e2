//! `Conv` (im2col + f32 GEMM per image and group) and `ConvTranspose` (GEMM + col2im),
//! for 1-D, 2-D and 3-D windows.

use super::linalg::gemm_f32;
use super::value::{contiguous, err, float_out, float_view, shaped, Result};
use super::window::{geometry, AutoPad, Geometry, G3};
use crate::tensor::Tensor;

/// Attributes of `Conv`. Empty vectors mean the ONNX defaults (ones / zeros / from `w`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvParams {
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
    pub auto_pad: AutoPad,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams {
            kernel_shape: vec![],
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
        }
    }
}

/// Fills `col` ([cin * K, OUT], row-major) from one image's `cin` channels.
fn im2col(x: &[f32], cin: usize, g: &G3, col: &mut [f32]) {
    let [_, ih, iw] = g.input;
    let id = g.input[0];
    let [k0, k1, k2] = g.kernel;
    let [o0, o1, o2] = g.out;
    let out = g.out_size();
    let mut row = 0;
    for c in 0..cin {
        let xc = &x[c * g.in_size()..(c + 1) * g.in_size()];
        for kz in 0..k0 {
            for ky in 0..k1 {
                for kx in 0..k2 {
                    let dst = &mut col[row * out..(row + 1) * out];
                    let mut p = 0;
                    for oz in 0..o0 {
                        let iz = g.coord(0, oz, kz);
                        for oy in 0..o1 {
                            let iy = g.coord(1, oy, ky);
                            let valid_zy =
                                iz >= 0 && (iz as usize) < id && iy >= 0 && (iy as usize) < ih;
                            if !valid_zy {
                                dst[p..p + o2].iter_mut().for_each(|v| *v = 0.0);
                                p += o2;
                                continue;
                            }
                            let base = (iz as usize * ih + iy as usize) * iw;
                            for ox in 0..o2 {
                                let ix = g.coord(2, ox, kx);
                                dst[p] = if ix >= 0 && (ix as usize) < iw {
                                    xc[base + ix as usize]
                                } else {
                                    0.0
                                };
                                p += 1;
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

fn check_rank(op: &str, x: &[usize], w: &[usize]) -> Result<()> {
    if x.len() < 3 || x.len() > 5 {
        return err(
            op,
            format!("input must be [N, C, D1..Dn] with 1 <= n <= 3, got {x:?}"),
        );
    }
    if w.len() != x.len() {
        return err(
            op,
            format!(
                "weight rank {} differs from input rank {} ({w:?} vs {x:?})",
                w.len(),
                x.len()
            ),
        );
    }
    Ok(())
}

fn bias_values(op: &str, b: Option<&Tensor>, m: usize) -> Result<Option<Vec<f32>>> {
    let Some(b) = b else { return Ok(None) };
    let v = float_view(op, b)?;
    if v.len() != m {
        return err(
            op,
            format!(
                "bias has {} values, expected {m} (one per output channel)",
                v.len()
            ),
        );
    }
    Ok(Some(v.iter().copied().collect()))
}

/// `Conv(x, w, b)`: x `[N, C, D...]`, w `[M, C/group, K...]`, b `[M]`.
pub fn conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &ConvParams) -> Result<Tensor> {
    let op = "Conv";
    let xs = x.shape().to_vec();
    let ws = w.shape().to_vec();
    check_rank(op, &xs, &ws)?;
    let (n, c) = (xs[0], xs[1]);
    let m = ws[0];
    let group = p.group.max(1);
    if !c.is_multiple_of(group) || !m.is_multiple_of(group) || ws[1] * group != c {
        return err(
            op,
            format!("group {group} does not fit input channels {c}, weight {ws:?}"),
        );
    }
    if !p.kernel_shape.is_empty() && p.kernel_shape != ws[2..] {
        return err(
            op,
            format!(
                "kernel_shape {:?} differs from weight shape {ws:?}",
                p.kernel_shape
            ),
        );
    }
    let geo = geometry(
        op,
        &xs[2..],
        &ws[2..],
        &p.strides,
        &p.dilations,
        &p.pads,
        p.auto_pad,
        false,
    )?;
    let g3 = G3::from_geometry(op, &geo)?;
    let bias = bias_values(op, b, m)?;
    let xv = float_view(op, x)?;
    let wv = float_view(op, w)?;
    let xsl = contiguous(&xv);
    let wsl = contiguous(&wv);
    let cg = c / group;
    let mg = m / group;
    let kk = g3.kernel_size();
    let (isz, osz) = (g3.in_size(), g3.out_size());
    let direct = kk == 1 && g3.strides == [1; 3] && g3.pads_begin == [0; 3] && g3.out == g3.input;
    super::value::checked_numel(op, &[n, m, osz])?;
    super::value::checked_numel(op, &[cg, kk, osz])?;
    let mut col = if direct {
        Vec::new()
    } else {
        vec![0f32; cg * kk * osz]
    };
    let mut out = vec![0f32; n * m * osz];
    for ni in 0..n {
        for gi in 0..group {
            let xg = &xsl[(ni * c + gi * cg) * isz..(ni * c + (gi + 1) * cg) * isz];
            let wg = &wsl[gi * mg * cg * kk..(gi + 1) * mg * cg * kk];
            let dst = &mut out[(ni * m + gi * mg) * osz..(ni * m + (gi + 1) * mg) * osz];
            if direct {
                gemm_f32(wg, xg, dst, mg, cg, osz, false);
            } else {
                im2col(xg, cg, &g3, &mut col);
                gemm_f32(wg, &col, dst, mg, cg * kk, osz, false);
            }
        }
        if let Some(bv) = &bias {
            for (mi, chunk) in out[ni * m * osz..(ni + 1) * m * osz]
                .chunks_mut(osz.max(1))
                .enumerate()
            {
                let bb = bv[mi];
                chunk.iter_mut().for_each(|v| *v += bb);
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&geo.out);
    float_out(op, x.dtype(), shaped(op, &shape, out)?)
}

/// Attributes of `ConvTranspose`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTransposeParams {
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
    pub auto_pad: AutoPad,
    pub output_padding: Vec<usize>,
    pub output_shape: Vec<usize>,
    /// Begin/end pads that may be negative (the graph IR's canonical form when an ONNX
    /// `output_shape` exceeds the full output); when set they replace `pads`.
    pub signed_pads: Option<Vec<i64>>,
}

impl Default for ConvTransposeParams {
    fn default() -> Self {
        ConvTransposeParams {
            kernel_shape: vec![],
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            output_padding: vec![],
            output_shape: vec![],
            signed_pads: None,
        }
    }
}

/// `ConvTranspose(x, w, b)`: x `[N, C, D...]`, w `[C, M/group, K...]`, b `[M]`.
pub fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &ConvTransposeParams,
) -> Result<Tensor> {
    let op = "ConvTranspose";
    let xs = x.shape().to_vec();
    let ws = w.shape().to_vec();
    check_rank(op, &xs, &ws)?;
    let nsp = xs.len() - 2;
    let (n, c) = (xs[0], xs[1]);
    let group = p.group.max(1);
    if ws[0] != c || !c.is_multiple_of(group) {
        return err(
            op,
            format!("weight {ws:?} does not fit input channels {c} with group {group}"),
        );
    }
    let mg = ws[1];
    let m = mg * group;
    let cg = c / group;
    let ones = vec![1; nsp];
    let strides = if p.strides.is_empty() {
        ones.clone()
    } else {
        p.strides.clone()
    };
    let dil = if p.dilations.is_empty() {
        ones.clone()
    } else {
        p.dilations.clone()
    };
    let opad = if p.output_padding.is_empty() {
        vec![0; nsp]
    } else {
        p.output_padding.clone()
    };
    if strides.len() != nsp || dil.len() != nsp || opad.len() != nsp {
        return err(
            op,
            format!("strides/dilations/output_padding must have {nsp} values"),
        );
    }
    let kernel = &ws[2..];
    let input = &xs[2..];
    if kernel.contains(&0) {
        return err(op, format!("weight {ws:?} has a zero kernel extent"));
    }
    let mut pb = vec![0isize; nsp];
    let mut outsz = vec![0usize; nsp];
    for i in 0..nsp {
        // Extents in i128 so absurd attributes give an error, not an overflow.
        let ek = (kernel[i] as i128 - 1) * dil[i] as i128 + 1;
        let full = strides[i] as i128 * (input[i] as i128 - 1).max(0) + opad[i] as i128 + ek;
        if full > super::value::MAX_ELEMENTS as i128 {
            return err(
                op,
                format!("output extent {full} on spatial axis {i} is too large"),
            );
        }
        let full = full as isize;
        let target = if !p.output_shape.is_empty() {
            let os = &p.output_shape;
            // output_shape may list only spatial extents or the full shape.
            Some(if os.len() == nsp {
                os[i]
            } else if os.len() == nsp + 2 {
                os[i + 2]
            } else {
                return err(
                    op,
                    format!("output_shape {os:?} must list {nsp} spatial extents"),
                );
            })
        } else if matches!(p.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
            Some(input[i].saturating_mul(strides[i]))
        } else {
            None
        };
        match target {
            Some(t) => {
                if t > super::value::MAX_ELEMENTS {
                    return err(
                        op,
                        format!("output extent {t} on spatial axis {i} is too large"),
                    );
                }
                let total = full - t as isize;
                let half = total.div_euclid(2);
                pb[i] = if p.auto_pad == AutoPad::SameUpper {
                    half
                } else {
                    total - half
                };
                outsz[i] = t;
            }
            None => {
                let (b0, e0) = if let Some(sp) = &p.signed_pads {
                    if sp.len() != 2 * nsp {
                        return err(
                            op,
                            format!("pads has {} values, expected {}", sp.len(), 2 * nsp),
                        );
                    }
                    (sp[i] as i128, sp[nsp + i] as i128)
                } else if p.pads.is_empty() {
                    (0, 0)
                } else if p.pads.len() == 2 * nsp {
                    (p.pads[i] as i128, p.pads[nsp + i] as i128)
                } else {
                    return err(
                        op,
                        format!("pads has {} values, expected {}", p.pads.len(), 2 * nsp),
                    );
                };
                let o = full as i128 - b0 - e0;
                if o <= 0 || o > super::value::MAX_ELEMENTS as i128 || b0.abs() > o + full as i128 {
                    return err(
                        op,
                        format!(
                            "output extent {o} on spatial axis {i} is not positive or too large"
                        ),
                    );
                }
                pb[i] = b0 as isize;
                outsz[i] = o as usize;
            }
        }
    }
    // Canonical 3-D form.
    let off = 3 - nsp.min(3);
    if nsp > 3 {
        return err(op, "at most 3 spatial axes are supported");
    }
    let mut in3 = [1usize; 3];
    let mut k3 = [1usize; 3];
    let mut s3 = [1usize; 3];
    let mut d3 = [1usize; 3];
    let mut p3 = [0isize; 3];
    let mut o3 = [1usize; 3];
    in3[off..].copy_from_slice(input);
    k3[off..].copy_from_slice(kernel);
    s3[off..].copy_from_slice(&strides);
    d3[off..].copy_from_slice(&dil);
    p3[off..].copy_from_slice(&pb);
    o3[off..].copy_from_slice(&outsz);
    let bias = bias_values(op, b, m)?;
    let xv = float_view(op, x)?;
    let wv = float_view(op, w)?;
    let xsl = contiguous(&xv);
    let wsl = contiguous(&wv);
    let isz: usize = in3.iter().product();
    let osz: usize = o3.iter().product();
    let kk: usize = k3.iter().product();
    super::value::checked_numel(op, &[n, m, osz])?;
    super::value::checked_numel(op, &[mg, kk, isz])?;
    let mut out = vec![0f32; n * m * osz];
    let mut cols = vec![0f32; mg * kk * isz];
    for ni in 0..n {
        for gi in 0..group {
            // cols[Mg*K, IN] = W_g^T [Mg*K, Cg] * x_g [Cg, IN]
            let wg = &wsl[gi * cg * mg * kk..(gi + 1) * cg * mg * kk];
            let xg = &xsl[(ni * c + gi * cg) * isz..(ni * c + (gi + 1) * cg) * isz];
            let (Ok(wm), Ok(xm), Ok(mut cm)) = (
                ndarray::ArrayView2::from_shape((cg, mg * kk), wg),
                ndarray::ArrayView2::from_shape((cg, isz), xg),
                ndarray::ArrayViewMut2::from_shape((mg * kk, isz), &mut cols[..]),
            ) else {
                return err(op, "internal shape error");
            };
            ndarray::linalg::general_mat_mul(1.0, &wm.t(), &xm, 0.0, &mut cm);
            for mi in 0..mg {
                let dst =
                    &mut out[(ni * m + gi * mg + mi) * osz..(ni * m + gi * mg + mi + 1) * osz];
                for kz in 0..k3[0] {
                    for ky in 0..k3[1] {
                        for kx in 0..k3[2] {
                            let kidx = (kz * k3[1] + ky) * k3[2] + kx;
                            let src = &cols[(mi * kk + kidx) * isz..(mi * kk + kidx + 1) * isz];
                            for iz in 0..in3[0] {
                                let oz = (iz * s3[0] + kz * d3[0]) as isize - p3[0];
                                if oz < 0 || oz as usize >= o3[0] {
                                    continue;
                                }
                                for iy in 0..in3[1] {
                                    let oy = (iy * s3[1] + ky * d3[1]) as isize - p3[1];
                                    if oy < 0 || oy as usize >= o3[1] {
                                        continue;
                                    }
                                    let srow = (iz * in3[1] + iy) * in3[2];
                                    let drow = (oz as usize * o3[1] + oy as usize) * o3[2];
                                    for ix in 0..in3[2] {
                                        let ox = (ix * s3[2] + kx * d3[2]) as isize - p3[2];
                                        if ox >= 0 && (ox as usize) < o3[2] {
                                            dst[drow + ox as usize] += src[srow + ix];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                if let Some(bv) = &bias {
                    let bb = bv[gi * mg + mi];
                    dst.iter_mut().for_each(|v| *v += bb);
                }
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&outsz);
    float_out(op, x.dtype(), shaped(op, &shape, out)?)
}

/// Exposes the resolved geometry of a `Conv` (used by shape inference and tests).
pub fn conv_geometry(x_shape: &[usize], w_shape: &[usize], p: &ConvParams) -> Result<Geometry> {
    check_rank("Conv", x_shape, w_shape)?;
    geometry(
        "Conv",
        &x_shape[2..],
        &w_shape[2..],
        &p.strides,
        &p.dilations,
        &p.pads,
        p.auto_pad,
        false,
    )
}
