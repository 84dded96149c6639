//! The agent's entry point: the command line, `--check`, and the hand-over to `run`.
//!
//! `run` starts the pipeline and shuts it down in stages, `reload` applies SIGHUP,
//! `signals` turns signals into messages, `reporter` logs the stats line, and `process`
//! sets up the process itself (logging, open-file limit, malloc arenas, host name).

mod dry_run;
mod process;
mod reload;
mod reporter;
mod run;
mod signals;

pub use process::hostname;

use crate::config::{CheckpointDir, Config, check_checkpoint_dir};
use crate::discovery::Input;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "logaggregator",
    version,
    about = "Tails log files through rotation and ships every line, with checkpoints."
)]
pub struct Cli {
    /// Configuration file [default: $LOGAGGREGATOR_CONFIG, else ./config.yaml]
    #[arg(short = 'c', long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print what it matches, and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check: bool,
    /// What to do (default: run the agent).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per file: size, checkpointed offset, lag and checkpoint age, read from disk (works
    /// whether the agent runs or not).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Feeds SAMPLE (or stdin) through an input's framing, multiline and processors and
    /// prints the events as JSON lines; no checkpoint, no output.
    DryRun {
        /// The input's id (default: the first input).
        #[arg(long, value_name = "ID")]
        input: Option<String>,
        /// A file of sample lines (default: standard input).
        sample: Option<PathBuf>,
    },
}

/// Exit code: clean shutdown.
pub const EXIT_OK: u8 = 0;
/// Exit code: fatal run-time error.
pub const EXIT_FATAL: u8 = 1;
/// Exit code: configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Where the configuration file's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigSource {
    Flag,
    Env,
    Default,
}

fn config_path(cli: &Cli) -> (PathBuf, ConfigSource) {
    if let Some(p) = &cli.config {
        return (p.clone(), ConfigSource::Flag);
    }
    match std::env::var_os("LOGAGGREGATOR_CONFIG") {
        Some(p) => (PathBuf::from(p), ConfigSource::Env),
        None => (PathBuf::from("config.yaml"), ConfigSource::Default),
    }
}

/// For a configuration file that does not exist and was not named by `--config`: what to do.
fn missing_config(path: &Path, source: ConfigSource) -> Option<String> {
    if !matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return None;
    }
    match source {
        // Config::load names the file and the error.
        ConfigSource::Flag => None,
        ConfigSource::Env => Some(format!(
            "configuration file {} (named by LOGAGGREGATOR_CONFIG) does not exist",
            path.display()
        )),
        ConfigSource::Default => {
            let here = std::env::current_dir()
                .map(|d| d.join(path).display().to_string())
                .unwrap_or_else(|_| path.display().to_string());
            Some(format!(
                "no configuration file: none was named and {here} does not exist; name one with --config FILE or LOGAGGREGATOR_CONFIG=FILE (config.yaml.example, shipped with logaggregator, is a commented one to start from)"
            ))
        }
    }
}

/// Runs the agent; returns the process exit code.
pub fn main(cli: Cli) -> u8 {
    let (path, source) = config_path(&cli);
    if let Some(e) = missing_config(&path, source) {
        eprintln!("logaggregator: configuration error: {e}");
        return EXIT_CONFIG;
    }
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logaggregator: configuration error: {e}");
            return EXIT_CONFIG;
        }
    };
    if cli.check {
        return print_check(&path, &cfg);
    }
    match &cli.command {
        Some(Command::Status { json }) => return crate::status::print(&cfg, *json),
        Some(Command::DryRun { input, sample }) => {
            return dry_run::run(&cfg, input.as_deref(), sample.as_deref());
        }
        None => {}
    }
    let level = process::init_logging(cfg.logging.level, cfg.logging.format);
    run::run(cfg, path, level)
}

/// `--check`: every checkpoint directory must be usable (as a start needs it), then prints
/// what each input matches now. Exit 0 or, with the first problem on stderr, 2.
fn print_check(path: &Path, cfg: &Config) -> u8 {
    let mut dirs = Vec::new();
    for (i, f) in cfg.inputs.files.iter().enumerate() {
        match check_checkpoint_dir(&f.checkpoint_path) {
            Ok(d) => dirs.push(d),
            Err(e) => {
                eprintln!(
                    "logaggregator: configuration error: inputs.files[{i}].checkpoint_path: {e}"
                );
                return EXIT_CONFIG;
            }
        }
    }
    println!("configuration {} is valid", path.display());
    for ((i, f), dir) in cfg.inputs.files.iter().enumerate().zip(dirs) {
        let input = match Input::new(i, f.clone()) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("logaggregator: configuration error: {e}");
                return EXIT_CONFIG;
            }
        };
        println!("input {i} (inputs.files[{i}], id {}):", f.id_or_default(i));
        println!("  paths: {}", f.paths.join(", "));
        if !f.exclude.is_empty() {
            println!("  exclude: {}", f.exclude.join(", "));
        }
        let state = match dir {
            CheckpointDir::Writable => "exists, writable",
            CheckpointDir::Creatable => "missing; can be created and written, created at start",
        };
        println!(
            "  checkpoint_path: {} ({state})",
            f.checkpoint_path.display()
        );
        let matched = input.matched();
        println!("  files matched now: {}", matched.len());
        for m in matched {
            println!("    {}", m.display());
        }
    }
    let out = &cfg.output;
    match &out.path {
        Some(p) if out.kind == crate::config::OutputType::File => {
            println!(
                "output: file {} (format {})",
                p.display(),
                fmt_name(out.format)
            )
        }
        _ => println!("output: stdout (format {})", fmt_name(out.format)),
    }
    EXIT_OK
}

fn fmt_name(f: crate::config::EventFormat) -> &'static str {
    match f {
        crate::config::EventFormat::Json => "json",
        crate::config::EventFormat::Text => "text",
    }
}
