//! The machine description of tahoma's chip (placeholder until the spec lands).
