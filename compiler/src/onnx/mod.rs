//! ONNX import: decodes a `ModelProto` (binary, via prost) and turns it into the graph IR.
pub mod proto;
