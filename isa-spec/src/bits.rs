//! Bit-level packing of instruction fields: little-endian bit order, bit 0 is the least
//! significant bit of byte 0. Every encoder and decoder goes through these four functions.

use crate::error::{DecodeError, EncodeError};

fn mask(width: usize) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Writes `value` into bits `[lsb, lsb + width)`; fails if it does not fit.
pub fn put_uint(buf: &mut [u8], lsb: usize, width: usize, value: u64) -> Result<(), EncodeError> {
    if value & !mask(width) != 0 {
        return Err(EncodeError::new(value.to_string(), width));
    }
    for i in 0..width {
        let bit = lsb + i;
        if (value >> i) & 1 == 1 {
            buf[bit / 8] |= 1 << (bit % 8);
        } else {
            buf[bit / 8] &= !(1 << (bit % 8));
        }
    }
    Ok(())
}

/// Writes a two's-complement `value` into `width` bits; fails if it does not fit.
pub fn put_int(buf: &mut [u8], lsb: usize, width: usize, value: i64) -> Result<(), EncodeError> {
    let min = -(1i128 << (width - 1));
    let max = (1i128 << (width - 1)) - 1;
    if (value as i128) < min || (value as i128) > max {
        return Err(EncodeError::new(value.to_string(), width));
    }
    put_uint(buf, lsb, width, (value as u64) & mask(width))
}

/// Reads bits `[lsb, lsb + width)` as an unsigned value.
pub fn get_uint(buf: &[u8], lsb: usize, width: usize) -> u64 {
    let mut v = 0u64;
    for i in 0..width {
        let bit = lsb + i;
        if (buf[bit / 8] >> (bit % 8)) & 1 == 1 {
            v |= 1 << i;
        }
    }
    v
}

/// Reads bits `[lsb, lsb + width)` as a two's-complement value.
pub fn get_int(buf: &[u8], lsb: usize, width: usize) -> i64 {
    sign_extend(get_uint(buf, lsb, width), width)
}

/// Sign-extends the low `width` bits of `v`.
pub fn sign_extend(v: u64, width: usize) -> i64 {
    if width >= 64 {
        return v as i64;
    }
    let shift = 64 - width;
    ((v << shift) as i64) >> shift
}

/// Fails unless bits `[lsb, lsb + width)` are all zero.
pub fn check_reserved(
    buf: &[u8],
    lsb: usize,
    width: usize,
    field: &str,
) -> Result<(), DecodeError> {
    let mut bit = 0;
    while bit < width {
        let w = (width - bit).min(64);
        if get_uint(buf, lsb + bit, w) != 0 {
            return Err(DecodeError::ReservedNonZero {
                field: field.to_string(),
            });
        }
        bit += w;
    }
    Ok(())
}
