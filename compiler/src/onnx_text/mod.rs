//! Parser for the ONNX text syntax (the grammar of `onnx.parser` / `onnx.printer`), producing
//! the same [`ModelProto`] the binary decoder gives, so both go through one importer.
//!
//! ```text
//! <ir_version: 8, opset_import: ["" : 17]>
//! agraph (float[N, 784] X) => (float[N, 10] Y)
//!    <float[784, 10] W = {...}, float[10] B = {...}>     # initializers / value infos
//! {
//!    T = MatMul(X, W)
//!    [named_node] Y = Add <some_attr: int = 1> (T, B)
//! }
//! ```
//!
//! Supported: the model header keywords, graph inputs (with optional `= {data}` initializers),
//! outputs, the `<...>` value-info / initializer list, nodes with optional `[name]`,
//! `domain.Op`, `:overload`, attributes before or after the operand list (ints, floats,
//! strings, lists, typed empty lists, tensors, sub-graphs, type protos, `@ref` references),
//! external-data tensors (`float[4] w = ["location": "w.bin"]`), model-local functions after
//! the graph, and `#` comments. Non-tensor types (`seq`, `map`, `optional`, `sparse_tensor`,
//! `opaque`) parse too. Errors carry line and column (code `E1015`).

use crate::diag::{Code, Diagnostic, Pos};
use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_proto::DataType,
    tensor_shape_proto::dimension::Value as DimValue, tensor_shape_proto::Dimension, type_proto,
    AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Parses a whole model in ONNX text syntax.
pub fn parse_model(src: &str) -> Result<ModelProto, Diagnostic> {
    let mut p = P {
        s: src.as_bytes(),
        src,
        pos: 0,
    };
    let m = p.model()?;
    Ok(m)
}

/// Parses a single graph (no `<...>` model header).
pub fn parse_graph(src: &str) -> Result<GraphProto, Diagnostic> {
    let mut p = P {
        s: src.as_bytes(),
        src,
        pos: 0,
    };
    let g = p.graph()?;
    if !p.at_end() {
        return Err(p.err("unexpected text after the graph"));
    }
    Ok(g)
}

struct P<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
}

enum Lit {
    Int(String),
    Float(String),
    Str(String),
}

type R<T> = Result<T, Diagnostic>;

impl<'a> P<'a> {
    fn err(&self, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Code::TextSyntax, msg)
            .at_pos(Pos::of_offset(self.src, self.pos))
            .help("see the ONNX text syntax (onnx.parser) for the expected form")
    }

    fn skip_ws(&mut self) {
        loop {
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.pos < self.s.len() && self.s[self.pos] == b'#' {
                while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else {
                return;
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.s.len()
    }

    fn peek(&mut self) -> u8 {
        self.skip_ws();
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == c {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Matches `c` without skipping whitespace first (for the `>` of `=>`).
    fn eat_raw(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            let found = self.describe_next();
            Err(self.err(format!("expected '{}', found {found}", c as char)))
        }
    }

    fn describe_next(&mut self) -> String {
        match self.peek() {
            0 => "end of input".into(),
            _ => {
                let rest = &self.src[self.pos.min(self.src.len())..];
                let tok: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(20)
                    .collect();
                format!("'{tok}'")
            }
        }
    }

    fn opt_ident(&mut self) -> String {
        self.skip_ws();
        let from = self.pos;
        if self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphabetic() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
            while self.pos < self.s.len()
                && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
            {
                self.pos += 1;
            }
        }
        self.src[from..self.pos].to_string()
    }

    fn ident(&mut self) -> R<String> {
        let id = self.opt_ident();
        if id.is_empty() {
            let found = self.describe_next();
            return Err(self.err(format!("expected an identifier, found {found}")));
        }
        Ok(id)
    }

    fn peek_ident(&mut self) -> String {
        let save = self.pos;
        let id = self.opt_ident();
        self.pos = save;
        id
    }

    fn quotable_ident(&mut self) -> R<String> {
        if self.peek() == b'"' {
            self.string()
        } else {
            self.ident()
        }
    }

    fn string(&mut self) -> R<String> {
        match self.literal()? {
            Lit::Str(s) => Ok(s),
            _ => Err(self.err("expected a string literal")),
        }
    }

    fn literal(&mut self) -> R<Lit> {
        let c = self.peek();
        let from = self.pos;
        if c == b'"' {
            self.pos += 1;
            let mut out = Vec::new();
            loop {
                match self.s.get(self.pos) {
                    None => {
                        self.pos = from;
                        return Err(self.err("unterminated string literal"));
                    }
                    Some(b'"') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        self.pos += 1;
                        match self.s.get(self.pos) {
                            Some(&b) => out.push(b),
                            None => return Err(self.err("unterminated string literal")),
                        }
                        self.pos += 1;
                    }
                    Some(&b) => {
                        out.push(b);
                        self.pos += 1;
                    }
                }
            }
            return String::from_utf8(out)
                .map(Lit::Str)
                .map_err(|_| self.err("string literal is not UTF-8"));
        }
        if c == b'-' {
            self.pos += 1;
        }
        let c2 = self.s.get(self.pos).copied().unwrap_or(0);
        if c2.is_ascii_alphabetic() {
            let w0 = self.pos;
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphabetic() {
                self.pos += 1;
            }
            let w = self.src[w0..self.pos].to_ascii_lowercase();
            if matches!(w.as_str(), "inf" | "infinity" | "nan") {
                return Ok(Lit::Float(self.src[from..self.pos].to_string()));
            }
            self.pos = from;
            return Err(self.err("invalid number literal"));
        }
        if !c2.is_ascii_digit() {
            self.pos = from;
            let found = self.describe_next();
            return Err(self.err(format!("expected a value, found {found}")));
        }
        let mut float = false;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_digit() || self.s[self.pos] == b'.')
        {
            if self.s[self.pos] == b'.' {
                if float {
                    break;
                }
                float = true;
            }
            self.pos += 1;
        }
        if self.pos < self.s.len() && (self.s[self.pos] == b'e' || self.s[self.pos] == b'E') {
            float = true;
            self.pos += 1;
            if self.pos < self.s.len() && (self.s[self.pos] == b'+' || self.s[self.pos] == b'-') {
                self.pos += 1;
            }
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
        }
        let text = self.src[from..self.pos].to_string();
        Ok(if float {
            Lit::Float(text)
        } else {
            Lit::Int(text)
        })
    }

    fn int(&mut self) -> R<i64> {
        let at = self.pos;
        match self.literal()? {
            Lit::Int(s) => s.parse::<i64>().map_err(|_| {
                self.pos = at;
                self.err(format!("integer '{s}' out of range"))
            }),
            _ => {
                self.pos = at;
                Err(self.err("expected an integer"))
            }
        }
    }

    fn float_of(&self, s: &str) -> R<f64> {
        let t = s.trim_start_matches('-');
        let v = match t.to_ascii_lowercase().as_str() {
            "inf" | "infinity" => f64::INFINITY,
            "nan" => f64::NAN,
            _ => t
                .parse::<f64>()
                .map_err(|_| self.err(format!("bad number '{s}'")))?,
        };
        Ok(if s.starts_with('-') { -v } else { v })
    }

    fn float(&mut self) -> R<f64> {
        match self.literal()? {
            Lit::Int(s) | Lit::Float(s) => self.float_of(&s),
            Lit::Str(_) => Err(self.err("expected a number, found a string")),
        }
    }

    // ---- model ------------------------------------------------------------------------

    fn model(&mut self) -> R<ModelProto> {
        let mut m = ModelProto::default();
        if self.eat(b'<') {
            loop {
                let kw = self.ident()?;
                self.expect(b':')?;
                match kw.as_str() {
                    "ir_version" => m.ir_version = Some(self.int()?),
                    "opset_import" => m.opset_import = self.opsets()?,
                    "producer_name" => m.producer_name = Some(self.string()?),
                    "producer_version" => m.producer_version = Some(self.string()?),
                    "domain" => m.domain = Some(self.string()?),
                    "model_version" => m.model_version = Some(self.int()?),
                    "doc_string" => m.doc_string = Some(self.string()?),
                    "metadata_props" => {
                        self.expect(b'[')?;
                        if !self.eat(b']') {
                            m.metadata_props = self.string_pairs()?;
                            self.expect(b']')?;
                        }
                    }
                    _ => return Err(self.err(format!("unknown model keyword '{kw}'"))),
                }
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b'>')?;
        }
        m.graph = Some(self.graph()?);
        while !self.at_end() {
            m.functions.push(self.function()?);
        }
        Ok(m)
    }

    fn opsets(&mut self) -> R<Vec<OperatorSetIdProto>> {
        let mut v = Vec::new();
        self.expect(b'[')?;
        if !self.eat(b']') {
            loop {
                let domain = self.string()?;
                self.expect(b':')?;
                let version = self.int()?;
                v.push(OperatorSetIdProto {
                    domain: Some(domain),
                    version: Some(version),
                });
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b']')?;
        }
        Ok(v)
    }

    fn string_pairs(&mut self) -> R<Vec<StringStringEntryProto>> {
        let mut v = Vec::new();
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.string()?;
            v.push(StringStringEntryProto {
                key: Some(key),
                value: Some(value),
            });
            if !self.eat(b',') {
                return Ok(v);
            }
        }
    }

    fn graph(&mut self) -> R<GraphProto> {
        let name = self.quotable_ident()?;
        self.graph_named(name)
    }

    fn graph_named(&mut self, name: String) -> R<GraphProto> {
        let mut g = GraphProto {
            name: Some(name),
            ..Default::default()
        };
        self.expect(b'(')?;
        if !self.eat(b')') {
            loop {
                let vi = self.value_info()?;
                if self.eat(b'=') {
                    let t =
                        self.tensor_data(vi.name.clone().unwrap_or_default(), vi.r#type.as_ref())?;
                    g.initializer.push(t);
                }
                g.input.push(vi);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b')')?;
        }
        self.arrow()?;
        g.output = self.value_info_list(b'(', b')')?;
        if self.eat(b'<') && !self.eat(b'>') {
            loop {
                let vi = self.value_info()?;
                if self.eat(b'=') {
                    let t =
                        self.tensor_data(vi.name.clone().unwrap_or_default(), vi.r#type.as_ref())?;
                    g.initializer.push(t);
                } else {
                    g.value_info.push(vi);
                }
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b'>')?;
        }
        g.node = self.nodes()?;
        Ok(g)
    }

    fn arrow(&mut self) -> R<()> {
        self.expect(b'=')?;
        if !self.eat_raw(b'>') {
            return Err(self.err("expected '=>'"));
        }
        Ok(())
    }

    fn value_info_list(&mut self, open: u8, close: u8) -> R<Vec<ValueInfoProto>> {
        let mut v = Vec::new();
        self.expect(open)?;
        if !self.eat(close) {
            loop {
                v.push(self.value_info()?);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(close)?;
        }
        Ok(v)
    }

    fn value_info(&mut self) -> R<ValueInfoProto> {
        let ty = if self.next_is_type() {
            Some(self.type_proto()?)
        } else {
            None
        };
        let name = self.quotable_ident()?;
        Ok(ValueInfoProto {
            name: Some(name),
            r#type: ty,
            ..Default::default()
        })
    }

    fn next_is_type(&mut self) -> bool {
        let id = self.peek_ident();
        elem_type_code(&id).is_some()
            || matches!(
                id.as_str(),
                "seq" | "map" | "optional" | "sparse_tensor" | "opaque"
            )
    }

    fn type_proto(&mut self) -> R<TypeProto> {
        let at = self.pos;
        let id = self.ident()?;
        if let Some(code) = elem_type_code(&id) {
            let shape = self.opt_shape()?;
            return Ok(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(code),
                    shape,
                })),
                ..Default::default()
            });
        }
        let value = match id.as_str() {
            "seq" | "optional" => {
                self.expect(b'(')?;
                let inner = Box::new(self.type_proto()?);
                self.expect(b')')?;
                if id == "seq" {
                    type_proto::Value::SequenceType(Box::new(type_proto::Sequence {
                        elem_type: Some(inner),
                    }))
                } else {
                    type_proto::Value::OptionalType(Box::new(type_proto::Optional {
                        elem_type: Some(inner),
                    }))
                }
            }
            "map" => {
                self.expect(b'(')?;
                let k = self.ident()?;
                let key = elem_type_code(&k)
                    .ok_or_else(|| self.err("expected a primitive type as map key"))?;
                self.expect(b',')?;
                let v = Box::new(self.type_proto()?);
                self.expect(b')')?;
                type_proto::Value::MapType(Box::new(type_proto::Map {
                    key_type: Some(key),
                    value_type: Some(v),
                }))
            }
            "sparse_tensor" => {
                self.expect(b'(')?;
                let e = self.ident()?;
                let code = elem_type_code(&e)
                    .ok_or_else(|| self.err("expected an element type in sparse_tensor"))?;
                let shape = self.opt_shape()?;
                self.expect(b')')?;
                type_proto::Value::SparseTensorType(type_proto::SparseTensor {
                    elem_type: Some(code),
                    shape,
                })
            }
            "opaque" => {
                self.expect(b'(')?;
                let mut o = type_proto::Opaque::default();
                if !self.eat(b')') {
                    let mut n = self.ident()?;
                    while self.eat(b'.') {
                        n.push('.');
                        n.push_str(&self.ident()?);
                    }
                    if self.eat(b',') {
                        o.domain = Some(n);
                        o.name = Some(self.ident()?);
                    } else {
                        o.name = Some(n);
                    }
                    self.expect(b')')?;
                }
                type_proto::Value::OpaqueType(o)
            }
            _ => {
                self.pos = at;
                return Err(self.err(format!("unknown type '{id}'")));
            }
        };
        Ok(TypeProto {
            value: Some(value),
            ..Default::default()
        })
    }

    /// `[d0, d1, ...]` after an element type.
    fn opt_shape(&mut self) -> R<Option<TensorShapeProto>> {
        if !self.eat(b'[') {
            // As in onnx.parser, a type without brackets is a scalar (empty shape).
            return Ok(Some(TensorShapeProto { dim: Vec::new() }));
        }
        let mut dims = Vec::new();
        if !self.eat(b']') {
            loop {
                let value = if self.eat(b'?') {
                    None
                } else if self.peek() == b'"' {
                    Some(DimValue::DimParam(self.string()?))
                } else {
                    let id = self.opt_ident();
                    if id.is_empty() {
                        Some(DimValue::DimValue(self.int()?))
                    } else {
                        Some(DimValue::DimParam(id))
                    }
                };
                dims.push(Dimension {
                    value,
                    denotation: None,
                });
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b']')?;
        }
        Ok(Some(TensorShapeProto { dim: dims }))
    }

    /// The data of a tensor of type `ty`: `{v, ...}` or `[ "key": "value", ... ]` (external).
    fn tensor_data(&mut self, name: String, ty: Option<&TypeProto>) -> R<TensorProto> {
        let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tt)),
            ..
        }) = ty
        else {
            return Err(self.err("a tensor value needs a tensor type"));
        };
        let elem = tt.elem_type.unwrap_or(0);
        let Some(shape) = &tt.shape else {
            return Err(self.err("a tensor value needs a shape"));
        };
        let mut dims = Vec::new();
        for d in &shape.dim {
            match d.value {
                Some(DimValue::DimValue(v)) => dims.push(v),
                _ => return Err(self.err("a tensor value needs numeric dimensions")),
            }
        }
        let mut t = TensorProto {
            name: Some(name),
            data_type: Some(elem),
            dims,
            ..Default::default()
        };
        if self.eat(b'{') {
            if !self.eat(b'}') {
                loop {
                    self.tensor_elem(&mut t, elem)?;
                    if !self.eat(b',') {
                        break;
                    }
                }
                self.expect(b'}')?;
            }
        } else if self.eat(b'[') {
            t.data_location = Some(DataLocation::External as i32);
            if !self.eat(b']') {
                t.external_data = self.string_pairs()?;
                self.expect(b']')?;
            }
        }
        Ok(t)
    }

    fn tensor_elem(&mut self, t: &mut TensorProto, elem: i32) -> R<()> {
        use DataType as D;
        let dt = DataType::try_from(elem).unwrap_or(D::Undefined);
        match dt {
            D::Int64 => t.int64_data.push(self.int()?),
            D::Uint32 | D::Uint64 => {
                let v = self.int()?;
                t.uint64_data
                    .push(u64::try_from(v).map_err(|_| self.err("unsigned value expected"))?);
            }
            D::Float | D::Complex64 => t.float_data.push(self.float()? as f32),
            D::Double | D::Complex128 => t.double_data.push(self.float()?),
            D::String => {
                let s = self.string()?;
                t.string_data.push(s.into_bytes());
            }
            D::Undefined => return Err(self.err("tensor of undefined element type")),
            _ => {
                let v = self.int()?;
                let v = i32::try_from(v)
                    .map_err(|_| self.err(format!("value {v} does not fit the element type")))?;
                t.int32_data.push(v);
            }
        }
        Ok(())
    }

    fn nodes(&mut self) -> R<Vec<NodeProto>> {
        self.expect(b'{')?;
        let mut v = Vec::new();
        while !self.eat(b'}') {
            if self.at_end() {
                return Err(self.err("expected '}' to close the node list, found end of input"));
            }
            v.push(self.node()?);
        }
        Ok(v)
    }

    /// A comma-separated list of possibly empty (quotable) identifiers.
    fn id_list(&mut self) -> R<Vec<String>> {
        let mut v = Vec::new();
        let first = self.opt_id_in_list()?;
        match first {
            None => return Ok(v),
            Some(id) => v.push(id),
        }
        while self.eat(b',') {
            match self.opt_id_in_list()? {
                Some(id) => v.push(id),
                None => break,
            }
        }
        Ok(v)
    }

    fn opt_id_in_list(&mut self) -> R<Option<String>> {
        if self.peek() == b'"' {
            return self.string().map(Some);
        }
        let id = self.opt_ident();
        Ok(if !id.is_empty() || self.peek() == b',' {
            Some(id)
        } else {
            None
        })
    }

    fn node(&mut self) -> R<NodeProto> {
        let mut n = NodeProto::default();
        if self.eat(b'[') {
            let name = if self.peek() == b'"' {
                self.string()?
            } else {
                self.opt_ident()
            };
            n.name = Some(name);
            self.expect(b']')?;
        }
        n.output = self.id_list()?;
        self.expect(b'=')?;
        let mut domain = String::new();
        let mut id = self.opt_ident();
        while self.eat(b'.') {
            if !domain.is_empty() {
                domain.push('.');
            }
            domain.push_str(&id);
            id = self.ident()?;
        }
        if id.is_empty() {
            let found = self.describe_next();
            return Err(self.err(format!("expected an op name, found {found}")));
        }
        n.domain = Some(domain);
        n.op_type = Some(id);
        if self.eat(b':') {
            n.overload = Some(self.ident()?);
        }
        n.attribute = self.attr_list()?;
        self.expect(b'(')?;
        n.input = self.id_list()?;
        self.expect(b')')?;
        if n.attribute.is_empty() {
            n.attribute = self.attr_list()?;
        }
        Ok(n)
    }

    fn attr_list(&mut self) -> R<Vec<AttributeProto>> {
        let mut v = Vec::new();
        if self.eat(b'<') {
            loop {
                v.push(self.attribute()?);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b'>')?;
        }
        Ok(v)
    }

    fn attribute(&mut self) -> R<AttributeProto> {
        let name = self.ident()?;
        let mut a = AttributeProto {
            name: Some(name),
            ..Default::default()
        };
        let mut declared = AttributeType::Undefined;
        if self.eat(b':') {
            let t = self.ident()?;
            declared = AttributeType::from_str_name(&t.to_ascii_uppercase())
                .filter(|t| *t != AttributeType::Undefined)
                .ok_or_else(|| self.err(format!("unknown attribute type '{t}'")))?;
            a.r#type = Some(declared as i32);
        }
        self.expect(b'=')?;
        if self.eat(b'[') {
            let single = singleton_of(declared);
            if self.peek() != b']' {
                loop {
                    let at = self.pos;
                    let item = self.single_attr_value(single)?;
                    let ty = AttributeType::try_from(item.r#type.unwrap_or(0))
                        .unwrap_or(AttributeType::Undefined);
                    let list_ty = match ty {
                        AttributeType::Int => {
                            a.ints.push(item.i.unwrap_or(0));
                            AttributeType::Ints
                        }
                        AttributeType::Float => {
                            a.floats.push(item.f.unwrap_or(0.0));
                            AttributeType::Floats
                        }
                        AttributeType::String => {
                            a.strings.push(item.s.unwrap_or_default());
                            AttributeType::Strings
                        }
                        AttributeType::Tensor => {
                            a.tensors.extend(item.t);
                            AttributeType::Tensors
                        }
                        AttributeType::Graph => {
                            a.graphs.extend(item.g);
                            AttributeType::Graphs
                        }
                        AttributeType::TypeProto => {
                            a.type_protos.extend(item.tp);
                            AttributeType::TypeProtos
                        }
                        _ => {
                            self.pos = at;
                            return Err(self.err("unsupported list element"));
                        }
                    };
                    match a.r#type {
                        Some(t) if t != list_ty as i32 => {
                            self.pos = at;
                            return Err(self.err("list elements of different kinds"));
                        }
                        _ => a.r#type = Some(list_ty as i32),
                    }
                    if !self.eat(b',') {
                        break;
                    }
                }
            } else if declared == AttributeType::Undefined {
                return Err(self.err(
                    "an empty list attribute needs a type annotation, e.g. `axes: ints = []`",
                ));
            } else if single == declared {
                return Err(self.err("a singleton attribute type cannot take a list value"));
            }
            self.expect(b']')?;
        } else {
            let v = self.single_attr_value(declared)?;
            let name = a.name.take();
            a = v;
            a.name = name;
        }
        Ok(a)
    }

    fn single_attr_value(&mut self, expected: AttributeType) -> R<AttributeProto> {
        let mut a = AttributeProto::default();
        let at = self.pos;
        let c = self.peek();
        if c.is_ascii_alphabetic() || c == b'_' {
            if self.next_is_type() {
                let tp = self.type_proto()?;
                let c = self.peek();
                let next_id = !self.peek_ident().is_empty();
                if c == b'{' || c == b'=' || c == b'"' || next_id {
                    let tname = if self.peek() == b'"' {
                        self.string()?
                    } else {
                        self.opt_ident()
                    };
                    self.eat(b'=');
                    a.t = Some(self.tensor_data(tname, Some(&tp))?);
                    a.r#type = Some(AttributeType::Tensor as i32);
                } else {
                    a.tp = Some(tp);
                    a.r#type = Some(AttributeType::TypeProto as i32);
                }
            } else {
                let w = self.peek_ident().to_ascii_lowercase();
                if matches!(w.as_str(), "inf" | "infinity" | "nan") {
                    let f = self.float()?;
                    a.f = Some(f as f32);
                    a.r#type = Some(AttributeType::Float as i32);
                } else {
                    a.g = Some(self.graph()?);
                    a.r#type = Some(AttributeType::Graph as i32);
                }
            }
        } else if self.eat(b'@') {
            a.ref_attr_name = Some(self.quotable_ident()?);
            if expected != AttributeType::Undefined {
                a.r#type = Some(expected as i32);
            }
            return Ok(a);
        } else {
            match self.literal()? {
                Lit::Int(s) if expected == AttributeType::Float => {
                    a.f = Some(self.float_of(&s)? as f32);
                    a.r#type = Some(AttributeType::Float as i32);
                }
                Lit::Int(s) => {
                    a.i = Some(s.parse::<i64>().map_err(|_| {
                        self.pos = at;
                        self.err(format!("integer '{s}' out of range"))
                    })?);
                    a.r#type = Some(AttributeType::Int as i32);
                }
                Lit::Float(s) => {
                    a.f = Some(self.float_of(&s)? as f32);
                    a.r#type = Some(AttributeType::Float as i32);
                }
                Lit::Str(s) => {
                    a.s = Some(s.into_bytes());
                    a.r#type = Some(AttributeType::String as i32);
                }
            }
        }
        if expected != AttributeType::Undefined && a.r#type != Some(expected as i32) {
            self.pos = at;
            return Err(self.err(format!(
                "attribute value does not match its declared type {}",
                expected.as_str_name().to_ascii_lowercase()
            )));
        }
        Ok(a)
    }

    fn function(&mut self) -> R<FunctionProto> {
        let mut f = FunctionProto::default();
        if self.eat(b'<') {
            loop {
                let kw = self.ident()?;
                self.expect(b':')?;
                match kw.as_str() {
                    "opset_import" => f.opset_import = self.opsets()?,
                    "doc_string" => f.doc_string = Some(self.string()?),
                    "domain" => f.domain = Some(self.string()?),
                    "overload" => f.overload = Some(self.string()?),
                    _ => return Err(self.err(format!("unknown function keyword '{kw}'"))),
                }
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b'>')?;
        }
        f.name = Some(self.quotable_ident()?);
        if self.eat(b'<') {
            loop {
                let id = self.quotable_ident()?;
                let c = self.peek();
                if c == b':' || c == b'=' {
                    // An attribute with a default value: re-parse it as `name [: type] = value`.
                    let mut a = AttributeProto {
                        name: Some(id),
                        ..Default::default()
                    };
                    let mut declared = AttributeType::Undefined;
                    if self.eat(b':') {
                        let t = self.ident()?;
                        declared = AttributeType::from_str_name(&t.to_ascii_uppercase())
                            .ok_or_else(|| self.err(format!("unknown attribute type '{t}'")))?;
                    }
                    self.expect(b'=')?;
                    let v = self.single_attr_value(declared)?;
                    let name = a.name.take();
                    a = v;
                    a.name = name;
                    f.attribute_proto.push(a);
                } else {
                    f.attribute.push(id);
                }
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b'>')?;
        }
        let (ins, mut vis) = self.fn_io()?;
        f.input = ins;
        self.arrow()?;
        let (outs, vis2) = self.fn_io()?;
        f.output = outs;
        vis.extend(vis2);
        if self.peek() == b'<' {
            vis.extend(self.value_info_list(b'<', b'>')?);
        }
        f.value_info = vis;
        f.node = self.nodes()?;
        Ok(f)
    }

    fn fn_io(&mut self) -> R<(Vec<String>, Vec<ValueInfoProto>)> {
        let (mut names, mut vis) = (Vec::new(), Vec::new());
        self.expect(b'(')?;
        if !self.eat(b')') {
            loop {
                let ty = if self.next_is_type() {
                    Some(self.type_proto()?)
                } else {
                    None
                };
                let name = self.quotable_ident()?;
                if ty.is_some() {
                    vis.push(ValueInfoProto {
                        name: Some(name.clone()),
                        r#type: ty,
                        ..Default::default()
                    });
                }
                names.push(name);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b')')?;
        }
        Ok((names, vis))
    }
}

/// The `TensorProto.DataType` code of a text-syntax element type name (`float`, `int64`, ...).
pub fn elem_type_code(name: &str) -> Option<i32> {
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    DataType::from_str_name(&name.to_ascii_uppercase())
        .filter(|d| *d != DataType::Undefined)
        .map(|d| d as i32)
}

fn singleton_of(t: AttributeType) -> AttributeType {
    use AttributeType as A;
    match t {
        A::Floats => A::Float,
        A::Ints => A::Int,
        A::Strings => A::String,
        A::Tensors => A::Tensor,
        A::Graphs => A::Graph,
        A::SparseTensors => A::SparseTensor,
        A::TypeProtos => A::TypeProto,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_graph_nodes_and_attributes() {
        let src = r#"
            <ir_version: 8, opset_import: ["" : 17, "com.x": 1], producer_name: "t">
            agraph (float[N, 4] X, int64[2] shape = {2, -1}) => (float[N, 2, 2] Y)
                <float[4] b = {1, 2.5, -3e2, inf}, float[N, 4] T>
            {
                # a comment
                [first] T = Add(X, b)
                Y = Reshape <allowzero = 0> (T, shape)
                Z1, , Z3 = com.x.Foo:ov <f: float = 1, fs = [1.0, 2.0], s = "a\"b", e: ints = [], t = float[2] {1, 2}, g = sub () => (float y) { y = Constant <value_float = 1.0> () }> (X)
            }
            <domain: "com.x", opset_import: ["": 17]> Foo <alpha> (x) => (y) { y = Identity(x) }
        "#;
        let m = parse_model(src).unwrap();
        assert_eq!(m.ir_version, Some(8));
        assert_eq!(m.opset_import.len(), 2);
        let g = m.graph.unwrap();
        assert_eq!(g.input.len(), 2);
        assert_eq!(g.initializer.len(), 2);
        assert_eq!(g.initializer[0].int64_data, vec![2, -1]);
        assert_eq!(
            g.initializer[1].float_data,
            vec![1.0, 2.5, -300.0, f32::INFINITY]
        );
        assert_eq!(g.value_info.len(), 1);
        assert_eq!(g.node.len(), 3);
        assert_eq!(g.node[0].name.as_deref(), Some("first"));
        let foo = &g.node[2];
        assert_eq!(
            foo.output,
            vec!["Z1".to_string(), String::new(), "Z3".to_string()]
        );
        assert_eq!(foo.domain.as_deref(), Some("com.x"));
        assert_eq!(foo.overload.as_deref(), Some("ov"));
        let a = &foo.attribute;
        assert_eq!(a[0].f, Some(1.0));
        assert_eq!(a[1].floats, vec![1.0, 2.0]);
        assert_eq!(a[2].s.as_deref(), Some(&b"a\"b"[..]));
        assert_eq!(a[3].r#type, Some(AttributeType::Ints as i32));
        assert_eq!(a[4].t.as_ref().unwrap().float_data, vec![1.0, 2.0]);
        assert_eq!(a[5].g.as_ref().unwrap().node.len(), 1);
        assert_eq!(m.functions.len(), 1);
        assert_eq!(m.functions[0].attribute, vec!["alpha".to_string()]);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_model("agraph (float[2] X) => (float[2] Y) {\n  Y = Relu(X\n}").unwrap_err();
        assert_eq!(e.code, Code::TextSyntax);
        assert_eq!(e.pos, Some(Pos { line: 3, col: 1 }));
        let e = parse_model("agraph (float[2] X) => (float[2] Y) {\n  Y = Relu <a = []> (X)\n}")
            .unwrap_err();
        assert_eq!(e.pos.map(|p| p.line), Some(2));
    }

    #[test]
    fn bad_input_never_panics() {
        for s in [
            "",
            "<",
            "a (",
            "a () => (",
            "a () => () {",
            "a () => () { x = ",
            "\"",
            "a (float[",
            "a (float[2] x = {1,",
            "<ir_version: 99999999999999999999>",
        ] {
            assert!(parse_model(s).is_err(), "{s:?} parsed");
        }
    }
}
