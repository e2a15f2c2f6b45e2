//! `tahoma compile MODEL --emit STAGE [-o FILE]`: runs the pipeline up to a stage and writes
//! that stage's text. Today the stages are `graph` (the imported graph IR); later stages plug
//! in as new [`Emit`] variants.

use super::model::{load_graph, ModelArgs};
use super::CliError;
use std::path::{Path, PathBuf};
use tahoma_compiler::diag::Code;
use tahoma_compiler::graph::text::{print_with, PrintOptions};

/// The stage whose dump `compile` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The graph IR after import (shapes static, constants folded).
    Graph,
}

/// Options of `compile` beyond the model flags.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub emit: Emit,
    pub output: Option<PathBuf>,
    /// Print every constant in full on stdout too (files always get the full, parseable dump);
    /// otherwise stdout shows constants of more than 16 elements as `<N elements elided>`.
    pub full_constants: bool,
}

pub fn compile(path: &Path, model: &ModelArgs, opts: &CompileOptions) -> Result<(), CliError> {
    let g = load_graph(path, model)?;
    let text = match opts.emit {
        Emit::Graph => {
            // A file gets the full dump (it parses back); the terminal gets a readable one.
            let elide = if opts.full_constants || opts.output.is_some() {
                None
            } else {
                Some(16)
            };
            print_with(&g, PrintOptions { elide_above: elide })
        }
    };
    match &opts.output {
        Some(out) => std::fs::write(out, text).map_err(|e| {
            CliError::new(
                Code::ReadFailed.as_str(),
                format!("cannot write '{}': {e}", out.display()),
            )
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
