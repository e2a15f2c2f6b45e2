//! The semantics layer shared by both schedulers: a [`Core`] (memories plus the tensor engine's
//! stationary register) and [`Core::execute`], which applies one instruction's effects and
//! reports what it did. One module per engine holds that engine's instructions; the GpSimd
//! engine's module also owns the JIT-compiled kernel table.

pub mod dma;
pub mod gpsimd;
pub mod scalar;
pub mod tensor;
pub mod vector;

use crate::error::Fault;
use crate::memory::Memories;
use tahoma_isa::{Dtype, Inst};

/// What an executed instruction did, for the run statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Multiply-accumulates (MATMUL).
    pub macs: u64,
    /// Bytes read from plus bytes written to HBM (DMA_COPY).
    pub hbm_bytes: u64,
    /// The operand dtype of a MATMUL.
    pub matmul_dtype: Option<Dtype>,
}

/// One core's architectural state.
#[derive(Default)]
pub struct Core {
    pub mem: Memories,
    pub tensor: tensor::TensorState,
    /// The program's GpSimd kernels, compiled for the host.
    pub kernels: gpsimd::Kernels,
}

impl Core {
    pub fn new() -> Core {
        Core::default()
    }

    /// A core whose HBM stores its first `footprint` bytes flat (`load::hbm_footprint`).
    pub fn with_hbm_footprint(footprint: u64) -> Core {
        Core {
            mem: Memories::with_hbm_footprint(footprint),
            tensor: tensor::TensorState::default(),
            kernels: gpsimd::Kernels::default(),
        }
    }

    /// Applies `inst`'s effects (semaphores are the scheduler's business).
    pub fn execute(&mut self, inst: &Inst) -> Result<Effects, Fault> {
        match inst {
            Inst::Nop(_) | Inst::End(_) => Ok(Effects::default()),
            Inst::LoadStationary(x) => tensor::load_stationary(self, x),
            Inst::Matmul(x) => tensor::matmul(self, x),
            Inst::TensorTensor(x) => vector::tensor_tensor(&mut self.mem, x),
            Inst::TensorScalar(x) => vector::tensor_scalar(&mut self.mem, x),
            Inst::TensorReduce(x) => vector::tensor_reduce(&mut self.mem, x),
            Inst::TensorCopy(x) => vector::tensor_copy(&mut self.mem, x),
            Inst::Select(x) => vector::select(&mut self.mem, x),
            Inst::Memset(x) => vector::memset(&mut self.mem, x),
            Inst::Iota(x) => vector::iota(&mut self.mem, x),
            Inst::Transpose32(x) => vector::transpose32(&mut self.mem, x),
            Inst::Activate(x) => scalar::activate(&mut self.mem, x),
            Inst::GpsimdKernel(x) => {
                gpsimd::gpsimd_kernel(&mut self.mem, &self.kernels, x).map(|()| Effects::default())
            }
            Inst::DmaCopy(x) => dma::dma_copy(&mut self.mem, x),
            Inst::DmaGather(x) => dma::dma_gather(&mut self.mem, x),
        }
    }
}

/// Reads a named on-chip operand, naming the field on failure.
pub(crate) fn read(mem: &Memories, name: &str, ap: &tahoma_isa::Ap) -> Result<Vec<f32>, Fault> {
    mem.read_ap(ap).map_err(|f| f.within(name))
}

/// Writes a named on-chip operand, naming the field on failure.
pub(crate) fn write(
    mem: &mut Memories,
    name: &str,
    ap: &tahoma_isa::Ap,
    vals: &[f32],
) -> Result<(), Fault> {
    mem.write_ap(ap, vals).map_err(|f| f.within(name))
}

/// Fails unless an operand has `want` elements.
pub(crate) fn expect_len(name: &str, have: usize, want: usize) -> Result<(), Fault> {
    if have == want {
        Ok(())
    } else {
        Err(Fault::new(
            "E4007",
            name,
            format!("has {have} elements, expected {want}"),
        ))
    }
}
