//! `TensorProto` -> [`Tensor`]: typed data fields, little-endian `raw_data`, and external data
//! read through the caller's [`ExternalData`] resolver after the location has been checked to
//! stay inside the model's folder.

use super::proto::{tensor_proto::DataLocation, TensorProto};
use super::ExternalData;
use crate::diag::{Code, Diagnostic};
use crate::tensor::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

/// Converts an initializer or constant tensor. `what` names it in errors.
pub fn tensor_from_proto(t: &TensorProto, ext: &dyn ExternalData) -> Result<Tensor, Diagnostic> {
    let name = t.name.clone().unwrap_or_default();
    let bad = |msg: String| {
        Diagnostic::new(Code::BadTensorData, format!("tensor '{name}': {msg}"))
            .help("re-export the model; its tensor data does not match the declared type and shape")
    };
    let code = t.data_type.unwrap_or(0);
    let dtype = DType::from_onnx_code(code).ok_or_else(|| {
        Diagnostic::new(
            Code::UnsupportedDtype,
            format!("tensor '{name}' has element type {} which tahoma does not support", onnx_type_name(code)),
        )
        .help("supported element types: float, float16, bfloat16, int64, int32, bool; convert the model's weights")
    })?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?);
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("too many elements".into()))?;

    let external = t.data_location == Some(DataLocation::External as i32);
    let raw: Option<Vec<u8>> = if external {
        Some(read_external(t, &name, n * dtype.size_bytes(), ext)?)
    } else {
        t.raw_data.clone()
    };
    if let Some(raw) = raw {
        let need = n
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| bad("too many elements".into()))?;
        if raw.len() != need {
            return Err(bad(format!(
                "raw data has {} bytes, {} elements of {dtype} need {need}",
                raw.len(),
                n
            )));
        }
        return Ok(from_raw(dtype, &shape, &raw));
    }
    let count = |len: usize| -> Result<(), Diagnostic> {
        if len != n {
            Err(bad(format!(
                "holds {len} values, shape {shape:?} needs {n}"
            )))
        } else {
            Ok(())
        }
    };
    let arr = |v| ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| bad(e.to_string()));
    Ok(match dtype {
        DType::F32 => {
            count(t.float_data.len())?;
            Tensor::F32(arr(t.float_data.clone())?)
        }
        DType::I64 => {
            count(t.int64_data.len())?;
            Tensor::I64(
                ArrayD::from_shape_vec(IxDyn(&shape), t.int64_data.clone())
                    .map_err(|e| bad(e.to_string()))?,
            )
        }
        DType::I32 => {
            count(t.int32_data.len())?;
            Tensor::I32(
                ArrayD::from_shape_vec(IxDyn(&shape), t.int32_data.clone())
                    .map_err(|e| bad(e.to_string()))?,
            )
        }
        DType::Bool => {
            count(t.int32_data.len())?;
            let v = t.int32_data.iter().map(|&x| x != 0).collect();
            Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| bad(e.to_string()))?)
        }
        // float16 / bfloat16 store their bit patterns in int32_data.
        DType::F16 => {
            count(t.int32_data.len())?;
            let v = t
                .int32_data
                .iter()
                .map(|&x| f16::from_bits(x as u16))
                .collect();
            Tensor::F16(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| bad(e.to_string()))?)
        }
        DType::BF16 => {
            count(t.int32_data.len())?;
            let v = t
                .int32_data
                .iter()
                .map(|&x| bf16::from_bits(x as u16))
                .collect();
            Tensor::BF16(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| bad(e.to_string()))?)
        }
    })
}

fn from_raw(dtype: DType, shape: &[usize], raw: &[u8]) -> Tensor {
    fn build<T, const N: usize>(
        shape: &[usize],
        raw: &[u8],
        f: impl Fn([u8; N]) -> T,
    ) -> ArrayD<T> {
        let v: Vec<T> = raw
            .chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect();
        // The caller checked raw.len() == product(shape) * N, so the shape always fits.
        ArrayD::from_shape_vec(IxDyn(shape), v)
            .unwrap_or_else(|_| unreachable!("length checked by caller"))
    }
    match dtype {
        DType::F32 => Tensor::F32(build(shape, raw, f32::from_le_bytes)),
        DType::F16 => Tensor::F16(build(shape, raw, |b| f16::from_bits(u16::from_le_bytes(b)))),
        DType::BF16 => Tensor::BF16(build(shape, raw, |b| {
            bf16::from_bits(u16::from_le_bytes(b))
        })),
        DType::I64 => Tensor::I64(build(shape, raw, i64::from_le_bytes)),
        DType::I32 => Tensor::I32(build(shape, raw, i32::from_le_bytes)),
        DType::Bool => Tensor::Bool(build(shape, raw, |b: [u8; 1]| b[0] != 0)),
    }
}

/// Checks that an external-data location stays inside the model folder: relative, no `..`
/// component, no NUL, not empty. Returns the location with `\` separators normalised to `/`.
pub fn check_location(loc: &str) -> Result<String, String> {
    if loc.is_empty() {
        return Err("the location is empty".into());
    }
    if loc.contains('\0') {
        return Err("the location contains a NUL byte".into());
    }
    let norm = loc.replace('\\', "/");
    let bytes = norm.as_bytes();
    if norm.starts_with('/')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err(format!("'{loc}' is an absolute path"));
    }
    if norm.split('/').any(|c| c == "..") {
        return Err(format!("'{loc}' leaves the model folder through '..'"));
    }
    Ok(norm)
}

fn read_external(
    t: &TensorProto,
    name: &str,
    need: usize,
    ext: &dyn ExternalData,
) -> Result<Vec<u8>, Diagnostic> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.clone().unwrap_or_default();
        let num = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                Diagnostic::new(
                    Code::ExternalDataRead,
                    format!("tensor '{name}': external data field is not a number: '{v}'"),
                )
            })
        };
        match kv.key.as_deref() {
            Some("location") => location = Some(v),
            Some("offset") => offset = num(&v)?,
            Some("length") => length = Some(num(&v)?),
            _ => {}
        }
    }
    let loc = location.ok_or_else(|| {
        Diagnostic::new(
            Code::ExternalDataRead,
            format!("tensor '{name}' is stored externally but has no location"),
        )
    })?;
    let loc = check_location(&loc).map_err(|why| {
        Diagnostic::new(Code::ExternalDataPath, format!("tensor '{name}': external data path refused: {why}"))
            .help("external data must be a relative path inside the model's folder; move the data file next to the model and fix the location")
    })?;
    let length = length.unwrap_or(need as u64);
    let file_len = ext.len(&loc).map_err(|e| {
        Diagnostic::new(
            Code::ExternalDataRead,
            format!("tensor '{name}': cannot read external data '{loc}': {e}"),
        )
        .help("keep the external data file in the model's folder")
    })?;
    let end = offset.checked_add(length);
    if end.is_none_or(|e| e > file_len) {
        return Err(Diagnostic::new(
            Code::ExternalDataRead,
            format!("tensor '{name}': bytes {offset}..{offset}+{length} lie outside '{loc}' ({file_len} bytes)"),
        )
        .help("the external data file is truncated or does not belong to this model"));
    }
    ext.read(&loc, offset, length).map_err(|e| {
        Diagnostic::new(
            Code::ExternalDataRead,
            format!("tensor '{name}': cannot read external data '{loc}': {e}"),
        )
    })
}

/// Name of an ONNX element type code for messages (`double`, `int8`, ...).
pub fn onnx_type_name(code: i32) -> String {
    use super::proto::tensor_proto::DataType;
    match DataType::try_from(code) {
        Ok(d) => d.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("#{code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_outside_the_folder_are_refused() {
        assert!(check_location("w.bin").is_ok());
        assert!(check_location("sub/w.bin").is_ok());
        assert!(check_location("/etc/passwd").is_err());
        assert!(check_location("C:\\w.bin").is_err());
        assert!(check_location("../w.bin").is_err());
        assert!(check_location("a/../../w.bin").is_err());
        assert!(check_location("a\\..\\w.bin").is_err());
        assert!(check_location("").is_err());
    }
}
