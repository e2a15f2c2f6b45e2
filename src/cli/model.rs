//! Loading a model for any subcommand: reads the file, picks ONNX text (`.onnxtxt`) or binary
//! by extension, resolves external data inside the model's folder, parses `--dim`/`--shape`
//! bindings, and imports into the graph IR.

use super::CliError;
use clap::Args;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tahoma_compiler::diag::{Code, Diagnostics};
use tahoma_compiler::graph::Graph;
use tahoma_compiler::onnx::{self, check_location, proto::ModelProto, ExternalData, ImportOptions};

/// Flags every command that takes a model accepts.
#[derive(Args, Clone, Debug, Default)]
pub struct ModelArgs {
    /// Bind a symbolic dimension: `--dim batch=8` (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE")]
    pub dims: Vec<String>,
    /// Give an input's whole shape: `--shape input_ids=1,128` (repeatable).
    #[arg(long = "shape", value_name = "INPUT=D0,D1,...")]
    pub shapes: Vec<String>,
}

impl ModelArgs {
    /// Parses the bindings into import options.
    pub fn options(&self) -> Result<ImportOptions, CliError> {
        let mut o = ImportOptions::default();
        for d in &self.dims {
            let (k, v) = d
                .split_once('=')
                .ok_or_else(|| bad_binding(format!("--dim '{d}' must look like NAME=VALUE")))?;
            let v = v
                .trim()
                .parse::<usize>()
                .map_err(|_| bad_binding(format!("--dim '{d}': '{v}' is not a size")))?;
            o.dims.insert(k.trim().to_string(), v);
        }
        for s in &self.shapes {
            let (k, v) = s.split_once('=').ok_or_else(|| {
                bad_binding(format!("--shape '{s}' must look like INPUT=D0,D1,..."))
            })?;
            let dims = if v.trim().is_empty() {
                Vec::new()
            } else {
                v.split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<usize>()
                            .map_err(|_| bad_binding(format!("--shape '{s}': '{x}' is not a size")))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            o.shapes.insert(k.trim().to_string(), dims);
        }
        Ok(o)
    }
}

fn bad_binding(msg: String) -> CliError {
    CliError::new(Code::BadBinding.as_str(), msg)
}

/// Turns front-end diagnostics into a CLI error (code of the first; every message kept).
pub fn diag_error(d: impl Into<Diagnostics>) -> CliError {
    let d: Diagnostics = d.into();
    let code = d.code().map_or("E1000", |c| c.as_str()).to_string();
    let text = d.to_string();
    let prefix = format!("error[{code}]");
    let rest = text.strip_prefix(&prefix).unwrap_or(&text);
    let message = rest
        .strip_prefix(": ")
        .unwrap_or(rest.trim_start())
        .to_string();
    CliError::new(code, message)
}

/// Whether `path` holds ONNX text syntax (by extension).
pub fn is_text(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "onnxtxt")
}

/// Reads and parses the model file into a `ModelProto` (binary or text).
pub fn load_proto(path: &Path) -> Result<ModelProto, CliError> {
    let bytes = std::fs::read(path).map_err(|e| {
        CliError::new(
            Code::ReadFailed.as_str(),
            format!("cannot read model '{}': {e}", path.display()),
        )
    })?;
    if is_text(path) {
        let src = String::from_utf8(bytes).map_err(|_| {
            CliError::new(
                Code::TextSyntax.as_str(),
                format!("'{}' is not UTF-8 text", path.display()),
            )
        })?;
        tahoma_compiler::onnx_text::parse_model(&src).map_err(|d| {
            let mut e = diag_error(d);
            e.message = format!("{}: {}", path.display(), e.message);
            e
        })
    } else {
        onnx::decode_model(&bytes).map_err(|d| {
            let mut e = diag_error(d);
            e.message = format!("{}: {}", path.display(), e.message);
            e
        })
    }
}

/// Reads, parses and imports the model at `path`.
pub fn load_graph(path: &Path, args: &ModelArgs) -> Result<Graph, CliError> {
    let proto = load_proto(path)?;
    import(path, &proto, args)
}

/// Imports an already parsed model whose file is at `path` (for external data).
pub fn import(path: &Path, proto: &ModelProto, args: &ModelArgs) -> Result<Graph, CliError> {
    let opts = args.options()?;
    let ext = FolderData::for_model(path);
    onnx::import_model(proto, &opts, &ext).map_err(diag_error)
}

/// External data read from files inside the model's folder.
pub struct FolderData {
    dir: PathBuf,
}

impl FolderData {
    pub fn for_model(model: &Path) -> Self {
        let dir = model.parent().map(Path::to_path_buf).unwrap_or_default();
        FolderData {
            dir: if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            },
        }
    }

    /// Resolves a location and checks (after following symlinks) that it stays in the folder.
    fn resolve(&self, location: &str) -> Result<PathBuf, String> {
        let loc = check_location(location)?;
        let dir = self
            .dir
            .canonicalize()
            .map_err(|e| format!("model folder: {e}"))?;
        let p = dir
            .join(&loc)
            .canonicalize()
            .map_err(|e| format!("'{loc}': {e}"))?;
        if !p.starts_with(&dir) {
            return Err(format!("'{loc}' resolves outside the model folder"));
        }
        Ok(p)
    }
}

impl ExternalData for FolderData {
    fn len(&self, location: &str) -> Result<u64, String> {
        let p = self.resolve(location)?;
        std::fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    }

    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let p = self.resolve(location)?;
        let mut f = File::open(&p).map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let len = usize::try_from(length).map_err(|_| "length too large".to_string())?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf)
    }
}
