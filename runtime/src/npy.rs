//! `.npy` encoding and decoding (NumPy format versions 1.0, 2.0 and 3.0 headers), in memory: the
//! CLI does the file IO. Supported element types: little-endian `<f4`, `<f2`, `<f8`, `<i4`,
//! `<i8` and `|b1`, C order only. Program tensors encode as `<f4` (fp32, and bf16, which NumPy
//! lacks), `<f2` (fp16) and `<i4` (i32).

use crate::error::RunError;
use crate::tensor::Tensor;
use half::f16;
use tahoma_isa::Dtype;

/// Element type of a `.npy` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F4,
    F2,
    F8,
    I4,
    I8,
    B1,
}

impl NpyDtype {
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F4 => "<f4",
            NpyDtype::F2 => "<f2",
            NpyDtype::F8 => "<f8",
            NpyDtype::I4 => "<i4",
            NpyDtype::I8 => "<i8",
            NpyDtype::B1 => "|b1",
        }
    }
    fn from_descr(s: &str) -> Option<NpyDtype> {
        Some(match s {
            "<f4" => NpyDtype::F4,
            "<f2" => NpyDtype::F2,
            "<f8" => NpyDtype::F8,
            "<i4" => NpyDtype::I4,
            "<i8" => NpyDtype::I8,
            "|b1" | "<b1" => NpyDtype::B1,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            NpyDtype::F4 | NpyDtype::I4 => 4,
            NpyDtype::F2 => 2,
            NpyDtype::F8 | NpyDtype::I8 => 8,
            NpyDtype::B1 => 1,
        }
    }
    /// True for integer and boolean types.
    pub fn is_integral(self) -> bool {
        matches!(self, NpyDtype::I4 | NpyDtype::I8 | NpyDtype::B1)
    }
}

/// A decoded array: its element type, shape and values (every supported type fits f64 exactly,
/// except i64 beyond 2^53).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub dtype: NpyDtype,
    pub shape: Vec<u64>,
    pub values: Vec<f64>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(code: &'static str, message: impl Into<String>) -> RunError {
    RunError::Npy {
        code,
        message: message.into(),
    }
}

/// The text after `'key':` in a header dict, trimmed.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[k + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

/// Decodes a `.npy` image.
pub fn decode(bytes: &[u8]) -> Result<NpyArray, RunError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err(
            "E4201",
            "not a .npy file (missing the \\x93NUMPY magic)",
        ));
    }
    let major = bytes[6];
    let (hlen, hstart): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("E4201", "truncated .npy header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(err(
                "E4201",
                format!(".npy format version {v} is not supported"),
            ))
        }
    };
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| err("E4201", "truncated .npy header"))?;
    let header = std::str::from_utf8(&bytes[hstart..hend])
        .map_err(|_| err("E4201", ".npy header is not text"))?;
    let descr = dict_value(header, "descr")
        .and_then(|v| {
            let q = v.chars().next()?;
            let body = &v[1..];
            Some(&body[..body.find(q)?])
        })
        .ok_or_else(|| err("E4201", format!(".npy header has no descr: {header}")))?;
    let dtype = NpyDtype::from_descr(descr).ok_or_else(|| {
        err(
            "E4202",
            format!("unsupported .npy dtype `{descr}` (supported: <f4 <f2 <f8 <i4 <i8 |b1)"),
        )
    })?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| err("E4201", ".npy header has no fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(err(
            "E4203",
            "Fortran-order .npy arrays are not supported; save with np.ascontiguousarray",
        ));
    } else if !fortran.starts_with("False") {
        return Err(err("E4201", "bad fortran_order in .npy header"));
    }
    let shape_txt = dict_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.find(')').map(|e| &v[..e]))
        .ok_or_else(|| err("E4201", ".npy header has no shape tuple"))?;
    let mut shape = Vec::new();
    for d in shape_txt
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let d = d.trim_end_matches('L');
        shape.push(
            d.parse::<u64>()
                .map_err(|_| err("E4201", format!("bad .npy dimension `{d}`")))?,
        );
    }
    let count = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| err("E4204", "the .npy shape is too large"))?;
    let data = &bytes[hend..];
    let need = count
        .checked_mul(dtype.size())
        .ok_or_else(|| err("E4204", "the .npy shape is too large"))?;
    if data.len() != need {
        return Err(err(
            "E4204",
            format!(
                ".npy data holds {} bytes, shape {:?} of {} needs {need}",
                data.len(),
                shape,
                dtype.descr()
            ),
        ));
    }
    let values: Vec<f64> = match dtype {
        NpyDtype::F4 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        NpyDtype::F2 => data
            .chunks_exact(2)
            .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64())
            .collect(),
        NpyDtype::F8 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        NpyDtype::I4 => data
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        NpyDtype::I8 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
            .collect(),
        NpyDtype::B1 => data.iter().map(|&b| f64::from(u8::from(b != 0))).collect(),
    };
    Ok(NpyArray {
        dtype,
        shape,
        values,
    })
}

fn header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so the data starts on a 64-byte boundary; the header ends with a newline.
    let unpadded = MAGIC.len() + 4 + h.len() + 1;
    h.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    h.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + h.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// Encodes an array in its own element type (format version 1.0).
pub fn encode_array(a: &NpyArray) -> Vec<u8> {
    let mut out = header(a.dtype.descr(), &a.shape);
    for &v in &a.values {
        match a.dtype {
            NpyDtype::F4 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            NpyDtype::F2 => {
                out.extend_from_slice(&crate::access::f64_to_f16(v).to_bits().to_le_bytes())
            }
            NpyDtype::F8 => out.extend_from_slice(&v.to_le_bytes()),
            NpyDtype::I4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            NpyDtype::I8 => out.extend_from_slice(&(v as i64).to_le_bytes()),
            NpyDtype::B1 => out.push(u8::from(v != 0.0)),
        }
    }
    out
}

/// Encodes a program tensor: fp32 and bf16 as `<f4`, fp16 as `<f2`, i32 as `<i4`.
pub fn encode(t: &Tensor) -> Vec<u8> {
    let descr = match t.dtype {
        Dtype::Fp32 | Dtype::Bf16 => "<f4",
        Dtype::Fp16 => "<f2",
        Dtype::I32 => "<i4",
    };
    let mut out = header(descr, &t.shape);
    out.reserve(t.data.len() * 4);
    for &v in &t.data {
        match t.dtype {
            Dtype::Fp32 | Dtype::Bf16 => out.extend_from_slice(&v.to_le_bytes()),
            Dtype::Fp16 => out.extend_from_slice(&f16::from_f32(v).to_bits().to_le_bytes()),
            Dtype::I32 => out.extend_from_slice(&crate::access::f32_to_i32(v).to_le_bytes()),
        }
    }
    out
}
