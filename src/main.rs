//! Command line entry point: parses arguments and hands over to `agent`.

use clap::Parser;
use logaggregator::agent::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Operators paste the older Go-style `-config FILE` from old docs; accept it.
    let args = std::env::args_os().map(|a| match a.to_str() {
        Some("-config") => "--config".into(),
        Some(s) if s.starts_with("-config=") => format!("-{s}").into(),
        _ => a,
    });
    let cli = Cli::parse_from(args);
    ExitCode::from(agent::main(cli))
}
