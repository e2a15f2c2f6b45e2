//! Operand helpers over the generated layouts: access patterns (`Ap` on chip, `DmaAp` for DMA),
//! scalar operands and the sync header. Owns their assembly syntax and canonical form.
//!
//! Access-pattern syntax: `MEM:DTYPE[START,COUNT]@OFFSET(SIZE:STRIDE,...)` with free dims
//! listed outermost first, e.g. `sbuf:bf16[0,128]@0x400(4:512,512:1)`. A DMA access into HBM adds
//! its partition stride after a semicolon: `hbm:fp32[0,128;512]@0x1000(512:1)`.

use crate::asm_value::{parse_i64, parse_u64, AsmValue};
use crate::error::DecodeError;
use crate::{machine, Ap, DmaAp, Dtype, Header, Mem, Scalar, ScalarMode};
use std::fmt::Write as _;

impl Dtype {
    /// Bytes per element.
    pub fn size_bytes(self) -> u64 {
        match self {
            Dtype::Fp32 | Dtype::I32 => 4,
            Dtype::Bf16 | Dtype::Fp16 => 2,
        }
    }
}

fn parse_dims(s: &str) -> Result<Vec<(u64, i64)>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected free dims `(SIZE:STRIDE,...)`, found `{s}`"))?;
    if inner.is_empty() {
        return Ok(vec![]);
    }
    inner
        .split(',')
        .map(|d| {
            let (a, b) = d
                .split_once(':')
                .ok_or_else(|| format!("expected SIZE:STRIDE, found `{d}`"))?;
            Ok((parse_u64(a)?, parse_i64(b)?))
        })
        .collect()
}

/// The parts of an access-pattern token.
struct ApText {
    mem: Mem,
    dtype: Dtype,
    part_start: u64,
    part_count: u64,
    part_stride: Option<i64>,
    offset: u64,
    dims: Vec<(u64, i64)>,
}

fn parse_ap_text(s: &str) -> Result<ApText, String> {
    let bad = || {
        format!("expected an access pattern `MEM:DTYPE[START,COUNT]@OFFSET(SIZE:STRIDE,...)`, found `{s}`")
    };
    let (mem, rest) = s.split_once(':').ok_or_else(bad)?;
    let mem = Mem::from_name(mem).ok_or_else(|| format!("unknown memory `{mem}` in `{s}`"))?;
    let lb = rest.find('[').ok_or_else(bad)?;
    let dtype = Dtype::from_name(&rest[..lb])
        .ok_or_else(|| format!("unknown dtype `{}` in `{s}`", &rest[..lb]))?;
    let rb = rest.find(']').ok_or_else(bad)?;
    let parts = &rest[lb + 1..rb];
    let (parts, pstride) = match parts.split_once(';') {
        Some((p, st)) => (p, Some(parse_i64(st)?)),
        None => (parts, None),
    };
    let (ps, pc) = parts.split_once(',').ok_or_else(bad)?;
    let after = rest[rb + 1..].strip_prefix('@').ok_or_else(bad)?;
    let lp = after.find('(').ok_or_else(bad)?;
    Ok(ApText {
        mem,
        dtype,
        part_start: parse_u64(ps)?,
        part_count: parse_u64(pc)?,
        part_stride: pstride,
        offset: parse_u64(&after[..lp])?,
        dims: parse_dims(&after[lp..])?,
    })
}

fn write_ap_text(out: &mut String, t: &ApText) {
    let _ = write!(
        out,
        "{}:{}[{},{}",
        t.mem.name(),
        t.dtype.name(),
        t.part_start,
        t.part_count
    );
    if let Some(st) = t.part_stride.filter(|&st| st != 0) {
        let _ = write!(out, ";{st}");
    }
    let _ = write!(out, "]@{:#x}(", t.offset);
    for (i, (s, st)) in t.dims.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{s}:{st}");
    }
    out.push(')');
}

fn check_dims(ndims: u64, sizes: [u64; 4], strides: [i64; 4]) -> Result<(), DecodeError> {
    if ndims > machine::MAX_FREE_DIMS {
        return Err(DecodeError::NonCanonical {
            field: "ndims".into(),
            message: format!("{ndims} free dims, at most {}", machine::MAX_FREE_DIMS),
        });
    }
    for k in ndims as usize..4 {
        if sizes[k] != 0 || strides[k] != 0 {
            return Err(DecodeError::NonCanonical {
                field: format!("size{k}"),
                message: format!("dim {k} is set but ndims is {ndims}"),
            });
        }
    }
    Ok(())
}

macro_rules! ap_common {
    ($t:ty) => {
        impl $t {
            fn sizes(&self) -> [u64; 4] {
                [self.size0, self.size1, self.size2, self.size3]
            }
            fn strides(&self) -> [i64; 4] {
                [self.stride0, self.stride1, self.stride2, self.stride3]
            }
            /// The free dims in use, outermost first, as (size, stride in elements).
            pub fn dims(&self) -> Vec<(u64, i64)> {
                let n = (self.ndims as usize).min(4);
                self.sizes()
                    .into_iter()
                    .zip(self.strides())
                    .take(n)
                    .collect()
            }
            /// Sets the free dims (outermost first); at most four.
            pub fn set_dims(&mut self, dims: &[(u64, i64)]) {
                let mut s = [0u64; 4];
                let mut st = [0i64; 4];
                for (k, &(a, b)) in dims.iter().take(4).enumerate() {
                    s[k] = a;
                    st[k] = b;
                }
                self.ndims = dims.len().min(4) as u64;
                [self.size0, self.size1, self.size2, self.size3] = s;
                [self.stride0, self.stride1, self.stride2, self.stride3] = st;
            }
            /// Number of elements per partition (1 with no free dims).
            pub fn free_elems(&self) -> u64 {
                self.dims().iter().fold(1u64, |a, d| a.saturating_mul(d.0))
            }
            /// Total number of elements the access enumerates.
            pub fn elems(&self) -> u64 {
                self.part_count.saturating_mul(self.free_elems())
            }
            pub(crate) fn canonicalize(&mut self) {
                self.ndims %= machine::MAX_FREE_DIMS + 1;
                let d = self.dims();
                self.set_dims(&d);
            }
            pub(crate) fn check_canonical(&self) -> Result<(), DecodeError> {
                check_dims(self.ndims, self.sizes(), self.strides())
            }
        }
    };
}
ap_common!(Ap);
ap_common!(DmaAp);

impl Ap {
    /// An on-chip access of `part_count` partitions from `part_start`, at byte `offset`.
    pub fn new(
        mem: Mem,
        dtype: Dtype,
        part_start: u64,
        part_count: u64,
        offset: u64,
        dims: &[(u64, i64)],
    ) -> Ap {
        let mut ap = Ap {
            mem,
            dtype,
            part_start,
            part_count,
            offset,
            ..Ap::default()
        };
        ap.set_dims(dims);
        ap
    }
}

impl DmaAp {
    /// A DMA access; `part_stride` (elements) is only meaningful in HBM.
    pub fn new(
        mem: Mem,
        dtype: Dtype,
        part_start: u64,
        part_count: u64,
        part_stride: i64,
        offset: u64,
        dims: &[(u64, i64)],
    ) -> DmaAp {
        let mut ap = DmaAp {
            mem,
            dtype,
            part_start,
            part_count,
            part_stride,
            offset,
            ..DmaAp::default()
        };
        ap.set_dims(dims);
        ap
    }
}

impl AsmValue for Ap {
    fn write_asm(&self, out: &mut String) {
        write_ap_text(
            out,
            &ApText {
                mem: self.mem,
                dtype: self.dtype,
                part_start: self.part_start,
                part_count: self.part_count,
                part_stride: None,
                offset: self.offset,
                dims: self.dims(),
            },
        );
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        let t = parse_ap_text(s)?;
        if t.part_stride.is_some() {
            return Err(format!("an on-chip access has no partition stride: `{s}`"));
        }
        if t.dims.len() > machine::MAX_FREE_DIMS as usize {
            return Err(format!(
                "at most {} free dims: `{s}`",
                machine::MAX_FREE_DIMS
            ));
        }
        Ok(Ap::new(
            t.mem,
            t.dtype,
            t.part_start,
            t.part_count,
            t.offset,
            &t.dims,
        ))
    }
}

impl AsmValue for DmaAp {
    fn write_asm(&self, out: &mut String) {
        write_ap_text(
            out,
            &ApText {
                mem: self.mem,
                dtype: self.dtype,
                part_start: self.part_start,
                part_count: self.part_count,
                part_stride: Some(self.part_stride),
                offset: self.offset,
                dims: self.dims(),
            },
        );
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        let t = parse_ap_text(s)?;
        if t.dims.len() > machine::MAX_FREE_DIMS as usize {
            return Err(format!(
                "at most {} free dims: `{s}`",
                machine::MAX_FREE_DIMS
            ));
        }
        Ok(DmaAp::new(
            t.mem,
            t.dtype,
            t.part_start,
            t.part_count,
            t.part_stride.unwrap_or(0),
            t.offset,
            &t.dims,
        ))
    }
}

impl Scalar {
    /// An immediate scalar.
    pub fn imm(v: f32) -> Scalar {
        Scalar {
            mode: ScalarMode::Imm,
            imm: v,
            ap: Ap::default(),
        }
    }
    /// A per-partition scalar read from an [P,1] access.
    pub fn per_partition(ap: Ap) -> Scalar {
        Scalar {
            mode: ScalarMode::Ap,
            imm: 0.0,
            ap,
        }
    }
    pub(crate) fn canonicalize(&mut self) {
        match self.mode {
            ScalarMode::Imm => self.ap = Ap::default(),
            ScalarMode::Ap => self.imm = 0.0,
        }
    }
    pub(crate) fn check_canonical(&self) -> Result<(), DecodeError> {
        let ok = match self.mode {
            ScalarMode::Imm => self.ap == Ap::default(),
            ScalarMode::Ap => self.imm.to_bits() == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(DecodeError::NonCanonical {
                field: "mode".into(),
                message: "the unused half of a scalar operand is not zero".into(),
            })
        }
    }
}

impl AsmValue for Scalar {
    fn write_asm(&self, out: &mut String) {
        match self.mode {
            ScalarMode::Imm => self.imm.write_asm(out),
            ScalarMode::Ap => self.ap.write_asm(out),
        }
    }
    fn parse_asm(s: &str) -> Result<Self, String> {
        if s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.contains(':') {
            Ok(Scalar::per_partition(Ap::parse_asm(s)?))
        } else {
            Ok(Scalar::imm(f32::parse_asm(s)?))
        }
    }
}

impl Header {
    /// Moves a lone second wait into the first slot, so the printed form reads back the same.
    pub(crate) fn canonicalize(&mut self) {
        if self.wait0_sem == 0 && self.wait0_value == 0 {
            (
                self.wait0_sem,
                self.wait0_value,
                self.wait1_sem,
                self.wait1_value,
            ) = (self.wait1_sem, self.wait1_value, 0, 0);
        }
    }
    pub(crate) fn check_canonical(&self) -> Result<(), DecodeError> {
        Ok(())
    }
    /// The waits in use, as (semaphore, value).
    pub fn waits(&self) -> Vec<(u64, u64)> {
        [
            (self.wait0_sem, self.wait0_value),
            (self.wait1_sem, self.wait1_value),
        ]
        .into_iter()
        .filter(|&(s, v)| s != 0 || v != 0)
        .collect()
    }
    /// The signal, as (semaphore, increment), if any.
    pub fn signal(&self) -> Option<(u64, u64)> {
        (self.signal_sem != 0 || self.signal_inc != 0).then_some((self.signal_sem, self.signal_inc))
    }
    /// Adds a wait `sem >= value`; fails when both wait slots are taken.
    pub fn add_wait(&mut self, sem: u64, value: u64) -> Result<(), String> {
        if self.wait0_sem == 0 && self.wait0_value == 0 {
            (self.wait0_sem, self.wait0_value) = (sem, value);
        } else if self.wait1_sem == 0 && self.wait1_value == 0 {
            (self.wait1_sem, self.wait1_value) = (sem, value);
        } else {
            return Err("an instruction waits on at most two semaphores".into());
        }
        Ok(())
    }
    /// Writes ` wait(sN>=V)` / ` signal(sN+=K)` suffixes.
    pub fn write_asm(&self, out: &mut String) {
        for (s, v) in [
            (self.wait0_sem, self.wait0_value),
            (self.wait1_sem, self.wait1_value),
        ] {
            if s != 0 || v != 0 {
                let _ = write!(out, " wait(s{s}>={v})");
            }
        }
        if let Some((s, k)) = self.signal() {
            let _ = write!(out, " signal(s{s}+={k})");
        }
    }
}
