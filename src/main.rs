//! The `tahoma` command line.
fn main() {}
