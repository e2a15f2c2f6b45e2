//! Sliding-window geometry shared by convolution and pooling: `auto_pad`, explicit pads,
//! strides, dilations, `ceil_mode`, and the output extent they give. Kernels work on a
//! canonical 3-D form (1-D and 2-D windows get leading unit axes).

use super::value::{err, Result};

/// ONNX `auto_pad`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoPad {
    #[default]
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    /// Parses the attribute string (`NOTSET`, `SAME_UPPER`, `SAME_LOWER`, `VALID`).
    pub fn parse(s: &str) -> Option<AutoPad> {
        match s {
            "NOTSET" | "" => Some(AutoPad::NotSet),
            "SAME_UPPER" => Some(AutoPad::SameUpper),
            "SAME_LOWER" => Some(AutoPad::SameLower),
            "VALID" => Some(AutoPad::Valid),
            _ => None,
        }
    }
}

/// Resolved window geometry over the spatial axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    pub input: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    pub out: Vec<usize>,
}

fn or_ones(op: &str, what: &str, v: &[usize], n: usize) -> Result<Vec<usize>> {
    if v.is_empty() {
        return Ok(vec![1; n]);
    }
    if v.len() != n {
        return err(
            op,
            format!(
                "{what} has {} values, expected {n} (one per spatial axis)",
                v.len()
            ),
        );
    }
    if v.contains(&0) {
        return err(op, format!("{what} {v:?} contains 0"));
    }
    Ok(v.to_vec())
}

/// Resolves pads and output extent of a sliding window over `input` (spatial extents only).
#[allow(clippy::too_many_arguments)]
pub fn geometry(
    op: &str,
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Result<Geometry> {
    let n = input.len();
    if kernel.len() != n {
        return err(
            op,
            format!("kernel {kernel:?} does not match the {n} spatial axes of input {input:?}"),
        );
    }
    let strides = or_ones(op, "strides", strides, n)?;
    let dilations = or_ones(op, "dilations", dilations, n)?;
    if !pads.is_empty() && pads.len() != 2 * n {
        return err(
            op,
            format!("pads has {} values, expected {}", pads.len(), 2 * n),
        );
    }
    let mut pb = vec![0; n];
    let mut pe = vec![0; n];
    let mut out = vec![0; n];
    for i in 0..n {
        if kernel[i] == 0 {
            return err(op, format!("kernel {kernel:?} has a zero extent"));
        }
        let ek = (kernel[i] - 1)
            .saturating_mul(dilations[i])
            .saturating_add(1);
        match auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = input[i].div_ceil(strides[i]);
                let total = (o.saturating_sub(1).saturating_mul(strides[i]))
                    .saturating_add(ek)
                    .saturating_sub(input[i]);
                let small = total / 2;
                if auto_pad == AutoPad::SameUpper {
                    (pb[i], pe[i]) = (small, total - small);
                } else {
                    (pb[i], pe[i]) = (total - small, small);
                }
                out[i] = o;
                continue;
            }
            AutoPad::Valid => {}
            AutoPad::NotSet => {
                if !pads.is_empty() {
                    pb[i] = pads[i];
                    pe[i] = pads[n + i];
                }
            }
        }
        let padded = input[i].saturating_add(pb[i]).saturating_add(pe[i]);
        if padded < ek {
            return err(
                op,
                format!("window extent {ek} exceeds padded input extent {padded} on spatial axis {i} (input {input:?})"),
            );
        }
        let span = padded - ek;
        let mut o = if ceil_mode {
            span.div_ceil(strides[i]) + 1
        } else {
            span / strides[i] + 1
        };
        // A window may not start inside the end padding only.
        if ceil_mode && (o - 1) * strides[i] >= input[i] + pb[i] {
            o -= 1;
        }
        out[i] = o;
    }
    Ok(Geometry {
        input: input.to_vec(),
        kernel: kernel.to_vec(),
        strides,
        dilations,
        pads_begin: pb,
        pads_end: pe,
        out,
    })
}

/// The geometry in canonical 3-D form; spatial ranks above 3 are refused.
#[derive(Clone, Copy, Debug)]
pub struct G3 {
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilations: [usize; 3],
    pub pads_begin: [isize; 3],
    pub pads_end: [isize; 3],
    pub out: [usize; 3],
}

impl G3 {
    pub fn from_geometry(op: &str, g: &Geometry) -> Result<G3> {
        let n = g.input.len();
        if n > 3 {
            return err(
                op,
                format!("{n} spatial axes are not supported (at most 3)"),
            );
        }
        let off = 3 - n;
        let mut r = G3 {
            input: [1; 3],
            kernel: [1; 3],
            strides: [1; 3],
            dilations: [1; 3],
            pads_begin: [0; 3],
            pads_end: [0; 3],
            out: [1; 3],
        };
        for i in 0..n {
            r.input[off + i] = g.input[i];
            r.kernel[off + i] = g.kernel[i];
            r.strides[off + i] = g.strides[i];
            r.dilations[off + i] = g.dilations[i];
            r.pads_begin[off + i] = g.pads_begin[i] as isize;
            r.pads_end[off + i] = g.pads_end[i] as isize;
            r.out[off + i] = g.out[i];
        }
        Ok(r)
    }

    pub fn in_size(&self) -> usize {
        self.input.iter().product()
    }
    pub fn out_size(&self) -> usize {
        self.out.iter().product()
    }
    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Input coordinate on axis `ax` for output position `o` and kernel tap `k`
    /// (may fall outside the input, in the padding).
    #[inline]
    pub fn coord(&self, ax: usize, o: usize, k: usize) -> isize {
        (o * self.strides[ax] + k * self.dilations[ax]) as isize - self.pads_begin[ax]
    }
}
