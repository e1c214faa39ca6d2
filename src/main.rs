//! The `ceiling` binary: parse, run, report. All logic lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ceiling::cli::Cli::parse();
    match ceiling::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = ceiling::exit_code_for(&err);
            eprintln!("ceiling: error: {err:#}");
            code
        }
    }
}
