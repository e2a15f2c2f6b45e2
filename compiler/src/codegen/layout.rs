//! Memory layout: HBM addresses for every tensor, and SBUF/PSUM addresses for every kernel's
//! buffers. SBUF buffers are placed by a rotating cursor so that consecutive kernels use
//! different regions when they fit (letting them overlap); PSUM buffers take whole banks,
//! rotating over the banks the same way.

use crate::diag::{Code, Diagnostic};
use crate::kernel::{HbmKind, KernelProgram};
use std::collections::HashMap;
use tahoma_isa::{machine, Mem};

/// HBM tensors start at multiples of this many bytes (a layout convention of the compiler).
const HBM_ALIGN: u64 = 64;
/// SBUF buffers start at multiples of this many bytes within a partition (layout convention).
const SBUF_ALIGN: u64 = 64;

/// Where everything lives.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// HBM byte address of each tensor.
    pub hbm: HashMap<String, u64>,
    /// Per kernel: byte offset within a partition of each buffer.
    pub buffers: Vec<HashMap<String, u64>>,
    /// Total HBM bytes used.
    pub hbm_bytes: u64,
}

fn round_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Plans every address of `kp`.
pub fn plan(kp: &KernelProgram) -> Result<Layout, Diagnostic> {
    let mut l = Layout::default();
    let mut at = 0u64;
    for t in &kp.tensors {
        if l.hbm.contains_key(&t.name) {
            return Err(Diagnostic::new(
                Code::KernelInvalid,
                format!("HBM tensor @{} is declared twice", t.name),
            ));
        }
        if let HbmKind::Const { values } = &t.kind {
            if values.len() as u64 != t.elems() {
                return Err(Diagnostic::new(
                    Code::KernelInvalid,
                    format!(
                        "constant @{} has {} values for shape {:?}",
                        t.name,
                        values.len(),
                        t.shape
                    ),
                ));
            }
        }
        l.hbm.insert(t.name.clone(), at);
        at = round_up(at + t.elems() * t.dtype.size_bytes(), HBM_ALIGN);
    }
    if at > machine::HBM_BYTES {
        return Err(Diagnostic::new(
            Code::OnChipMemory,
            format!(
                "the program's tensors need {at} bytes of HBM, the chip has {}",
                machine::HBM_BYTES
            ),
        ));
    }
    l.hbm_bytes = at;
    let bank = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS;
    let (mut sbuf_cursor, mut psum_cursor) = (0u64, 0u64);
    for k in &kp.kernels {
        let oom = |mem: Mem, need: u64, have: u64| {
            Diagnostic::new(Code::OnChipMemory, format!("the kernel needs {need} bytes per partition of {}, the chip has {have}", mem.name()))
                .at_node(k.name.clone(), k.op.clone())
                .help("the op's tiles are too large for on-chip memory; this op's lowering must tile it more finely")
        };
        let mut sbuf_need = 0;
        let mut psum_banks = 0;
        for b in &k.buffers {
            if b.partitions == 0 || b.partitions > machine::PARTITIONS {
                return Err(Diagnostic::new(
                    Code::KernelInvalid,
                    format!(
                        "buffer %{} has {} partitions (1..={})",
                        b.name,
                        b.partitions,
                        machine::PARTITIONS
                    ),
                )
                .at_node(k.name.clone(), k.op.clone()));
            }
            let bytes = b.free * b.dtype.size_bytes();
            match b.mem {
                Mem::Sbuf => sbuf_need += round_up(bytes, SBUF_ALIGN),
                Mem::Psum => psum_banks += bytes.div_ceil(bank).max(1),
                Mem::Hbm => {
                    return Err(Diagnostic::new(
                        Code::KernelInvalid,
                        format!(
                        "buffer %{} is declared in HBM; HBM tensors are program-level `@` tensors",
                        b.name
                    ),
                    )
                    .at_node(k.name.clone(), k.op.clone()))
                }
            }
        }
        if sbuf_need > machine::SBUF_PARTITION_BYTES {
            return Err(oom(Mem::Sbuf, sbuf_need, machine::SBUF_PARTITION_BYTES));
        }
        if psum_banks > machine::PSUM_BANKS {
            return Err(oom(
                Mem::Psum,
                psum_banks * bank,
                machine::PSUM_PARTITION_BYTES,
            ));
        }
        if sbuf_cursor + sbuf_need > machine::SBUF_PARTITION_BYTES {
            sbuf_cursor = 0;
        }
        if psum_cursor + psum_banks > machine::PSUM_BANKS {
            psum_cursor = 0;
        }
        let mut map = HashMap::new();
        for b in &k.buffers {
            let bytes = b.free * b.dtype.size_bytes();
            let addr = match b.mem {
                Mem::Sbuf => {
                    let a = sbuf_cursor;
                    sbuf_cursor += round_up(bytes, SBUF_ALIGN);
                    a
                }
                _ => {
                    let a = psum_cursor * bank;
                    psum_cursor += bytes.div_ceil(bank).max(1);
                    a
                }
            };
            if map.insert(b.name.clone(), addr).is_some() {
                return Err(Diagnostic::new(
                    Code::KernelInvalid,
                    format!("buffer %{} is declared twice", b.name),
                )
                .at_node(k.name.clone(), k.op.clone()));
            }
        }
        l.buffers.push(map);
    }
    Ok(l)
}
