//! tahoma's runtime: the program loader and the emulator of one core.
//!
//! - [`load`]: `.tbin` bytes to a checked [`Program`] (container and legality errors keep their
//!   isa-spec codes).
//! - [`memory`], [`access`]: SBUF/PSUM/HBM storage and access-pattern gather/scatter.
//! - [`engines`]: the semantics of every instruction, one module per engine.
//! - [`functional`], [`timed`]: the two schedulers over that one semantics layer; [`sched`]
//!   holds what they share (semaphores, statistics, deadlock reports).
//! - [`emulator`]: the host API ([`Emulator`]); [`inputs`]: program I/O in HBM; [`tensor`]:
//!   host tensors; [`npy`]: `.npy` bytes; [`report`]: results and summaries; [`trace`]: Chrome
//!   trace JSON; [`error`]: errors and their codes; [`kernels`]: ready-made programs (a tiled
//!   GEMM) for tests and benchmarks.
//!
//! No file IO happens here: the CLI reads and writes files.

pub mod access;
pub mod emulator;
pub mod engines;
pub mod error;
pub mod functional;
pub mod inputs;
pub mod kernels;
pub mod load;
pub mod memory;
pub mod npy;
pub mod profile;
pub mod report;
pub mod sched;
pub mod tensor;
pub mod timed;
pub mod trace;

pub use emulator::{run_program, Emulator, RunOptions};
pub use error::{Blocked, ExecError, Fault, RunError};
pub use load::{load, validate};
pub use npy::{NpyArray, NpyDtype};
pub use report::{Mode, RunResult};
pub use sched::StreamStats;
pub use tahoma_isa::program::Program;
pub use tensor::Tensor;
pub use timed::TimingParams;
