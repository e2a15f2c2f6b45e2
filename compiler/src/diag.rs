//! Diagnostics shared by the front end: the stable error-code enum and the error value every
//! import, text-parse and verify step returns. A diagnostic names the code, the ONNX node and
//! op it concerns (when there is one), the source position (for text input), and what the
//! user can do about it. Codes never change meaning once released; new ones are appended.

use std::fmt;

/// Stable error codes of the front end. `E10xx` are model-import errors (ONNX binary, ONNX
/// text, binding of symbolic dims), `E12xx` are graph-IR text and verifier errors. (`E2xxx`
/// and up belong to isa-spec and the runtime.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The bytes are not a valid ONNX protobuf (truncated, wrong file, corrupt).
    NotProtobuf,
    /// The model has no graph, or an IR/opset version outside what tahoma supports.
    UnsupportedModel,
    /// A node input names a value that no graph input, initializer or node output defines.
    UndefinedValue,
    /// One or more ops (or op domains) are not supported; all of them are listed at once.
    UnsupportedOp,
    /// A symbolic dimension is not bound by `--dim` or `--shape`.
    UnboundDim,
    /// An external-data location is absolute, contains `..`, or otherwise leaves the model folder.
    ExternalDataPath,
    /// External data could not be read: missing file or an offset/length outside the file.
    ExternalDataRead,
    /// Operand element types do not fit the op.
    TypeMismatch,
    /// Operand shapes do not fit the op (broadcast, rank, contraction dim, ...).
    ShapeMismatch,
    /// The node graph has a cycle.
    Cycle,
    /// A tensor element type tahoma does not support (double, int8, string, ...).
    UnsupportedDtype,
    /// An attribute is missing, has the wrong kind, or an invalid value.
    BadAttribute,
    /// An input that must be known at compile time (axes, shape, pads, ...) is computed at run time.
    DynamicValue,
    /// An initializer or constant whose stored data does not match its dtype and shape.
    BadTensorData,
    /// ONNX text syntax error (with line and column).
    TextSyntax,
    /// A `--dim`/`--shape` binding that is malformed or names no input / dim of the model.
    BadBinding,
    /// Two definitions of the same value name, or a malformed graph interface.
    DuplicateValue,
    /// The model file (or a file it names) cannot be read.
    ReadFailed,
    /// Graph-IR text syntax error (with line and column).
    IrSyntax,
    /// Graph-IR id out of range, duplicated, or inconsistent with its definition.
    IrBadId,
    /// Graph-IR value used before it is defined (or never defined).
    IrUseBeforeDef,
    /// Graph-IR node whose stored output types differ from the op's inferred types, or whose
    /// operands the op rejects.
    IrTypeError,
    /// A node whose op (or this use of it) has no lowering to the chip yet.
    NotLowered,
    /// A kernel needs more SBUF or PSUM than the chip has.
    OnChipMemory,
    /// Kernel-IR text syntax error (with line and column).
    KernelSyntax,
    /// A kernel-IR program that is well-formed text but inconsistent (unknown buffer, view out
    /// of its buffer, loop variable not in scope, ...).
    KernelInvalid,
    /// The optimizer could not extract a graph from its e-graph (no acyclic, well-typed form of
    /// an output). An internal error: `-O0` compiles without the optimizer.
    OptExtract,
    /// The optimized graph fails verification (an unsound rewrite). An internal error: `-O0`
    /// compiles without the optimizer.
    OptInvalid,
}

impl Code {
    /// The stable code string, e.g. `E1001`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotProtobuf => "E1001",
            Code::UnsupportedModel => "E1002",
            Code::UndefinedValue => "E1003",
            Code::UnsupportedOp => "E1004",
            Code::UnboundDim => "E1005",
            Code::ExternalDataPath => "E1006",
            Code::ExternalDataRead => "E1007",
            Code::TypeMismatch => "E1008",
            Code::ShapeMismatch => "E1009",
            Code::Cycle => "E1010",
            Code::UnsupportedDtype => "E1011",
            Code::BadAttribute => "E1012",
            Code::DynamicValue => "E1013",
            Code::BadTensorData => "E1014",
            Code::TextSyntax => "E1015",
            Code::BadBinding => "E1016",
            Code::DuplicateValue => "E1017",
            Code::ReadFailed => "E1018",
            Code::IrSyntax => "E1201",
            Code::IrBadId => "E1202",
            Code::IrUseBeforeDef => "E1203",
            Code::IrTypeError => "E1204",
            Code::NotLowered => "E1301",
            Code::OnChipMemory => "E1302",
            Code::KernelSyntax => "E1303",
            Code::KernelInvalid => "E1304",
            Code::OptExtract => "E1401",
            Code::OptInvalid => "E1402",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line and column in a text input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    /// Computes the line and column of byte offset `at` in `src`.
    pub fn of_offset(src: &str, at: usize) -> Pos {
        let at = at.min(src.len());
        let before = &src.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count() as u32
            + 1;
        Pos { line, col }
    }
}

/// One error: what went wrong, where, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// ONNX node name (or graph-IR node name) the error concerns.
    pub node: Option<String>,
    /// Op type of that node.
    pub op: Option<String>,
    /// Position in a text input.
    pub pos: Option<Pos>,
    /// What the user can do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            node: None,
            op: None,
            pos: None,
            help: None,
        }
    }

    /// Names the node (and its op) the error concerns.
    pub fn at_node(mut self, node: impl Into<String>, op: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self.op = Some(op.into());
        self
    }

    pub fn at_pos(mut self, pos: Pos) -> Self {
        self.pos = Some(pos);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]", self.code)?;
        if let Some(p) = self.pos {
            write!(f, " at line {}, column {}", p.line, p.col)?;
        }
        write!(f, ": ")?;
        match (&self.node, &self.op) {
            (Some(n), Some(o)) => write!(f, "node '{n}' ({o}): ")?,
            (Some(n), None) => write!(f, "node '{n}': ")?,
            _ => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// A non-empty list of diagnostics (the verifier and the unsupported-op check report all at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The code of the first diagnostic.
    pub fn code(&self) -> Option<Code> {
        self.0.first().map(|d| d.code)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}
