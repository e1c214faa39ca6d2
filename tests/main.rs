//! The integration tests: one binary, one module per area.

mod caps;
mod cli;
mod compare;
mod disk_full;
mod explore;
mod figures;
mod fleet;
mod fleet_render;
mod fuzz;
mod lab;
mod merge;
mod names;
mod netns;
mod processes;
mod report;
mod results;
mod run;
mod serve;
mod serve_requests;
mod shell;
mod slurm;
mod spreadsheet;
mod tui;
mod util;
mod workers;
