//! ONNX import: decodes a `ModelProto` (binary, via prost) and turns it into the graph IR with
//! every shape static and shape arithmetic folded.
//!
//! * [`decode_model`] parses protobuf bytes; [`crate::onnx_text::parse_model`] parses the text
//!   syntax into the same `ModelProto`.
//! * [`import_model`] checks the op set (all unsupported ops reported at once), binds symbolic
//!   input dims from [`ImportOptions`], loads initializers (external data through the caller's
//!   [`ExternalData`]: this crate does no file IO), orders nodes topologically (cycles are an
//!   error), canonicalises each node per opset (`ops`), infers types, folds constants (`fold`),
//!   checks declared output types, removes values nothing reads
//!   ([`Graph::remove_dead_values`]) and runs the verifier.

pub mod fold;
mod import;
mod ops;
pub mod proto;
pub mod tensor;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::graph::Graph;
use prost::Message;
use std::collections::BTreeMap;

pub use import::{model_op_histogram, SUPPORTED_OPS};
pub use tensor::check_location;

/// Lowest and highest default-domain opset versions tahoma imports. Before opset 7 the
/// importer applies the older semantics where they differ (legacy broadcasting of binary ops,
/// `is_test`, attribute forms of Reshape/Pad/Cast/Split); the few old forms it does not
/// convert (Tile-1) are reported per node.
pub const MIN_OPSET: i64 = 1;
pub const MAX_OPSET: i64 = 28;

/// Bindings for symbolic input dimensions.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// `--dim NAME=VALUE`: binds every `dim_param` called NAME.
    pub dims: BTreeMap<String, usize>,
    /// `--shape INPUT=D0,D1,...`: the whole shape of a graph input (wins over `dims`).
    pub shapes: BTreeMap<String, Vec<usize>>,
}

/// Reads external tensor data. Locations passed in are already checked by
/// [`check_location`]: relative, no `..`. Implementations resolve them against the model's
/// folder (and should refuse symlinks leaving it).
pub trait ExternalData {
    /// Size of the file at `location` in bytes.
    fn len(&self, location: &str) -> Result<u64, String>;
    /// `length` bytes at `offset` of the file at `location`.
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, String>;
}

/// An [`ExternalData`] for models that must not reference external files (text input, tests):
/// every request fails.
pub struct NoExternalData;

impl ExternalData for NoExternalData {
    fn len(&self, location: &str) -> Result<u64, String> {
        Err(format!(
            "no external data is available for this model (asked for '{location}')"
        ))
    }
    fn read(&self, location: &str, _: u64, _: u64) -> Result<Vec<u8>, String> {
        self.len(location).map(|_| Vec::new())
    }
}

/// Decodes binary ONNX (`ModelProto`) bytes.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, Diagnostic> {
    let m = proto::ModelProto::decode(bytes).map_err(|e| {
        Diagnostic::new(Code::NotProtobuf, format!("not a valid ONNX model: {e}"))
            .help("the file is truncated or is not an ONNX ModelProto; ONNX text files must end in .onnxtxt")
    })?;
    if m.graph.is_none() {
        return Err(Diagnostic::new(
            Code::NotProtobuf,
            "not an ONNX model: the protobuf holds no graph",
        )
        .help("the file is truncated or is not an ONNX ModelProto"));
    }
    Ok(m)
}

/// Encodes a model as binary ONNX (protobuf) bytes.
pub fn encode_model(m: &proto::ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

/// Imports a decoded model into the graph IR.
pub fn import_model(
    model: &proto::ModelProto,
    opts: &ImportOptions,
    ext: &dyn ExternalData,
) -> Result<Graph, Diagnostics> {
    import::import(model, opts, ext)
}

/// Decodes and imports binary ONNX bytes.
pub fn import_bytes(
    bytes: &[u8],
    opts: &ImportOptions,
    ext: &dyn ExternalData,
) -> Result<Graph, Diagnostics> {
    let m = decode_model(bytes)?;
    import_model(&m, opts, ext)
}

/// Parses and imports ONNX text syntax.
pub fn import_text(
    src: &str,
    opts: &ImportOptions,
    ext: &dyn ExternalData,
) -> Result<Graph, Diagnostics> {
    let m = crate::onnx_text::parse_model(src)?;
    import_model(&m, opts, ext)
}
