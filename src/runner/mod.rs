//! The life of one run, apart from any one subcommand: what `run`, `lab`
//! and `explore` share. Today that is the built-in target server started
//! as a child process ([`target`]); the plan → engine → snapshots → sinks
//! loop still lives in `cmd/run.rs` and moves here next.

pub mod target;
