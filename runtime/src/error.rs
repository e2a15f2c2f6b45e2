//! Errors of loading and running a program. Every error has a stable code: loader errors keep the
//! codes of `tahoma_isa` (E2xxx container, E3xxx legality; E2008 a GpSimd kernel that does not
//! parse, breaks the kernel contract or does not compile); the emulator's own are E4xxx:
//!
//! | code  | meaning |
//! |-------|---------|
//! | E4001 | an access touches memory outside its SBUF/PSUM partition or HBM |
//! | E4002 | MATMUL with no stationary loaded |
//! | E4003 | MATMUL shape disagrees with the loaded stationary (K or M) |
//! | E4004 | MATMUL moving dtype differs from the stationary's dtype |
//! | E4005 | semaphore deadlock |
//! | E4006 | an access enumerates more elements than the emulator handles |
//! | E4007 | operand shapes disagree at run time |
//! | E4008 | a DMA_GATHER index is not a row of its table |
//! | E4101 | unknown program input |
//! | E4102 | input shape differs from the I/O table |
//! | E4103 | input values cannot be converted to the input's dtype |
//! | E4104 | a name given for an input is a program output |
//! | E4201 | not a `.npy` file / malformed header |
//! | E4202 | unsupported `.npy` dtype |
//! | E4203 | Fortran-order `.npy` |
//! | E4204 | `.npy` data size disagrees with its header |

use std::fmt;
use tahoma_isa::check::ProgramViolation;
use tahoma_isa::program::{ProgramError, StreamId};

/// Something an instruction did wrong, before it is located in the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub code: &'static str,
    /// The field at fault (`moving`, `dst`, `src.part_count`, ...).
    pub field: String,
    pub message: String,
}

impl Fault {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Fault {
        Fault {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
    /// Prefixes the field path with an enclosing operand name.
    pub fn within(mut self, outer: &str) -> Fault {
        self.field = if self.field.is_empty() {
            outer.to_string()
        } else {
            format!("{outer}.{}", self.field)
        };
        self
    }
}

/// A fault located at an instruction: stream, pc, its assembly text and the op it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub stream: StreamId,
    pub pc: usize,
    pub inst: String,
    pub op: Option<String>,
    pub fault: Fault,
}

/// One stream stuck on a semaphore in a deadlock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub stream: StreamId,
    pub pc: usize,
    pub inst: String,
    pub op: Option<String>,
    pub sem: u64,
    /// The semaphore's value when the machine stopped.
    pub value: u64,
    /// The value the instruction waits for (`sem >= awaited`).
    pub awaited: u64,
}

/// Why a program could not be loaded or run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// The `.tbin` container is malformed.
    Load(ProgramError),
    /// An instruction breaks a legality constraint of the spec.
    Illegal(Box<ProgramViolation>),
    /// An instruction failed while running.
    Exec(Box<ExecError>),
    /// Every unfinished stream waits on a semaphore nothing running will signal. `cycle` is the
    /// simulated time it was found at (0 in functional mode).
    Deadlock { blocked: Vec<Blocked>, cycle: u64 },
    /// A program input given by the host is wrong.
    Input {
        code: &'static str,
        name: String,
        message: String,
    },
    /// A GpSimd kernel of the program's table does not parse, breaks the kernel contract or
    /// does not compile (E2008).
    Kernel { kernel: usize, message: String },
    /// A `.npy` image could not be read.
    Npy { code: &'static str, message: String },
}

impl RunError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Load(e) => e.code(),
            RunError::Illegal(v) => v.violation.code(),
            RunError::Exec(e) => e.fault.code,
            RunError::Deadlock { .. } => "E4005",
            RunError::Kernel { .. } => "E2008",
            RunError::Input { code, .. } | RunError::Npy { code, .. } => code,
        }
    }
}

fn write_at(
    f: &mut fmt::Formatter<'_>,
    stream: StreamId,
    pc: usize,
    inst: &str,
    op: &Option<String>,
) -> fmt::Result {
    write!(f, "stream {stream}, pc {pc}: `{inst}`")?;
    if let Some(op) = op {
        write!(f, " (from op `{op}`)")?;
    }
    Ok(())
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Load(e) => write!(f, "{e}"),
            RunError::Illegal(v) => write!(f, "{v}"),
            RunError::Exec(e) => {
                write_at(f, e.stream, e.pc, &e.inst, &e.op)?;
                write!(f, ": field `{}`: {}", e.fault.field, e.fault.message)
            }
            RunError::Deadlock { blocked, cycle } => {
                write!(f, "semaphore deadlock")?;
                if *cycle > 0 {
                    write!(f, " at cycle {cycle}")?;
                }
                write!(
                    f,
                    ": every unfinished stream waits on a semaphore nothing will signal"
                )?;
                for b in blocked {
                    write!(f, "\n  ")?;
                    write_at(f, b.stream, b.pc, &b.inst, &b.op)?;
                    write!(
                        f,
                        " waits for s{} >= {} but s{} = {}",
                        b.sem, b.awaited, b.sem, b.value
                    )?;
                }
                Ok(())
            }
            RunError::Input { name, message, .. } => write!(f, "input `{name}`: {message}"),
            RunError::Npy { message, .. } => write!(f, "npy: {message}"),
            RunError::Kernel { kernel, message } => {
                write!(f, "GpSimd kernel {kernel}: {message}")
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<ProgramError> for RunError {
    fn from(e: ProgramError) -> Self {
        RunError::Load(e)
    }
}

impl From<Box<ProgramViolation>> for RunError {
    fn from(v: Box<ProgramViolation>) -> Self {
        RunError::Illegal(v)
    }
}
