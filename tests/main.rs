//! The integration tests: one binary, one module per area.

mod caps;
mod cli;
mod explore;
mod fuzz;
mod lab;
mod netns;
mod processes;
mod results;
mod run;
mod serve;
mod tui;
mod util;
mod workers;
