//! The integration tests: one binary, one module per area.

mod caps;
mod cli;
mod compare;
mod explore;
mod lab;
mod netns;
mod processes;
mod report;
mod results;
mod run;
mod serve;
mod shell;
mod tui;
mod util;
mod workers;
