//! Program inputs and outputs in HBM: writing host values for a named input (checking its shape
//! and dtype against the program's I/O table and converting with round-to-nearest-even), seeded
//! random inputs for those the host did not give, and reading any I/O tensor back.

use crate::access::{decode, f64_to_bf16, f64_to_f16};
use crate::error::RunError;
use crate::memory::{ByteMem, Hbm};
use crate::npy::NpyArray;
use crate::tensor::Tensor;
use tahoma_isa::program::{IoEntry, IoKind};
use tahoma_isa::rng::Rng;
use tahoma_isa::Dtype;

/// Random i32 inputs are drawn from `[0, RANDOM_INT_RANGE)` (small non-negative values suit
/// indices); random float inputs from `[-1, 1)`.
pub const RANDOM_INT_RANGE: u64 = 10;

fn input_err(code: &'static str, name: &str, message: String) -> RunError {
    RunError::Input {
        code,
        name: name.to_string(),
        message,
    }
}

/// Finds the input `name` in the I/O table.
pub(crate) fn find_input<'a>(io: &'a [IoEntry], name: &str) -> Result<&'a IoEntry, RunError> {
    match io.iter().find(|e| e.name == name) {
        Some(e) if e.kind == IoKind::Input => Ok(e),
        Some(_) => Err(input_err(
            "E4104",
            name,
            "is a program output, not an input".into(),
        )),
        None => {
            let names: Vec<&str> = io
                .iter()
                .filter(|e| e.kind == IoKind::Input)
                .map(|e| e.name.as_str())
                .collect();
            Err(input_err(
                "E4101",
                name,
                format!(
                    "the program has no such input (inputs: {})",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Writes `values` (row-major, `shape`) as input `e`, converting to its dtype. `integral`
/// says the host values are integers (needed for an i32 input).
pub(crate) fn write_input(
    hbm: &mut Hbm,
    e: &IoEntry,
    shape: &[u64],
    values: &[f64],
    integral: bool,
) -> Result<(), RunError> {
    if shape != e.shape.as_slice() {
        return Err(input_err(
            "E4102",
            &e.name,
            format!("shape {:?} given, the program expects {:?}", shape, e.shape),
        ));
    }
    if values.len() as u64 != e.elems() {
        return Err(input_err(
            "E4102",
            &e.name,
            format!("{} values for shape {:?}", values.len(), e.shape),
        ));
    }
    let mut bytes = Vec::with_capacity(e.bytes() as usize);
    for &v in values {
        match e.dtype {
            Dtype::Fp32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
            Dtype::Bf16 => bytes.extend_from_slice(&f64_to_bf16(v).to_bits().to_le_bytes()),
            Dtype::Fp16 => bytes.extend_from_slice(&f64_to_f16(v).to_bits().to_le_bytes()),
            Dtype::I32 => {
                if !integral || v.fract() != 0.0 || v < i32::MIN as f64 || v > i32::MAX as f64 {
                    return Err(input_err(
                        "E4103",
                        &e.name,
                        format!(
                            "the input is i32 but {v} is not an i32 value; pass an integer array"
                        ),
                    ));
                }
                bytes.extend_from_slice(&(v as i32).to_le_bytes());
            }
        }
    }
    hbm.write_from(e.addr, &bytes);
    Ok(())
}

/// Writes a decoded `.npy` array as input `e`.
pub(crate) fn write_npy(hbm: &mut Hbm, e: &IoEntry, a: &NpyArray) -> Result<(), RunError> {
    write_input(hbm, e, &a.shape, &a.values, a.dtype.is_integral())
}

/// Writes a host tensor as input `e` (its values convert to the input's dtype).
pub(crate) fn write_tensor(hbm: &mut Hbm, e: &IoEntry, t: &Tensor) -> Result<(), RunError> {
    let vals: Vec<f64> = t.data.iter().map(|&v| f64::from(v)).collect();
    let integral = t.dtype == Dtype::I32 || vals.iter().all(|v| v.fract() == 0.0);
    write_input(hbm, e, &t.shape, &vals, integral)
}

/// Seeded random values for input `e`.
pub fn random_values(e: &IoEntry, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..e.elems())
        .map(|_| match e.dtype {
            Dtype::I32 => rng.below(RANDOM_INT_RANGE) as f64,
            _ => f64::from(rng.uniform(-1.0, 1.0)),
        })
        .collect()
}

/// Reads I/O entry `e` from HBM.
pub(crate) fn read_entry(hbm: &Hbm, e: &IoEntry) -> Tensor {
    let es = e.dtype.size_bytes() as usize;
    let mut bytes = vec![0u8; e.bytes() as usize];
    hbm.read_into(e.addr, &mut bytes);
    let data = bytes.chunks_exact(es).map(|c| decode(e.dtype, c)).collect();
    Tensor::new(e.dtype, e.shape.clone(), data)
}
