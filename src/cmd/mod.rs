//! One module per subcommand: turns flags into validated values, starts the
//! work, wires snapshots to the UI and the results directory.

pub mod compare;
pub mod explore;
pub mod lab;
pub mod report;
pub mod run;
pub mod serve;
pub mod shell;
pub mod worker;
