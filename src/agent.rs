//! Wiring: loads the config, starts discovery, output and checkpoint threads, handles
//! signals, and shuts down in order (tailers stop, channel drains, output flushes, final
//! checkpoint).

use crate::checkpoint::{self, Store};
use crate::config::{Config, Level, LogFormat};
use crate::discovery::{self, Input};
use crate::event::{BufferPool, OpenSlots, Stop};
use crate::output;
use crate::stats::{self, Stats};
use crate::tailer::Pipeline;
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Bytes a tailer reads at once.
const CHUNK_BYTES: usize = 128 * 1024;
/// Read buffers in flight across all files: bounds memory whatever the file count.
const POOL_BUFFERS: usize = 24;
/// Batches queued between tailers and the output.
const CHANNEL_BATCHES: usize = 16;
/// Descriptors kept back from max_open_files for the output, sockets and directories.
const FD_HEADROOM: u64 = 64;
/// A shutdown that takes longer than this is abandoned (at-least-once still holds).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "logaggregator",
    version,
    about = "Tails log files through rotation and ships every line, with checkpoints."
)]
pub struct Cli {
    /// Configuration file [default: $LOGAGGREGATOR_CONFIG, else ./config.yaml]
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print what it matches, and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check: bool,
}

/// Exit code: clean shutdown.
pub const EXIT_OK: u8 = 0;
/// Exit code: fatal run-time error.
pub const EXIT_FATAL: u8 = 1;
/// Exit code: configuration error.
pub const EXIT_CONFIG: u8 = 2;

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .or_else(|| std::env::var_os("LOGAGGREGATOR_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config.yaml"))
}

/// Runs the agent; returns the process exit code.
pub fn main(cli: Cli) -> u8 {
    let path = config_path(&cli);
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logaggregator: configuration error: {e}");
            return EXIT_CONFIG;
        }
    };
    if cli.check {
        print_check(&path, &cfg);
        return EXIT_OK;
    }
    init_logging(cfg.logging.level, cfg.logging.format);
    run(cfg)
}

fn print_check(path: &std::path::Path, cfg: &Config) {
    println!("configuration {} is valid", path.display());
    for (i, f) in cfg.inputs.files.iter().enumerate() {
        let input = Input::new(i, f.clone());
        println!("input {i}:");
        println!("  paths: {}", f.paths.join(", "));
        if !f.exclude.is_empty() {
            println!("  exclude: {}", f.exclude.join(", "));
        }
        println!("  checkpoint_path: {}", f.checkpoint_path.display());
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
}

fn fmt_name(f: crate::config::EventFormat) -> &'static str {
    match f {
        crate::config::EventFormat::Json => "json",
        crate::config::EventFormat::Text => "text",
    }
}

fn level_filter(l: Level) -> LevelFilter {
    match l {
        Level::Trace => LevelFilter::TRACE,
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error => LevelFilter::ERROR,
    }
}

/// Sends the agent's own logs to stderr (stdout belongs to the stdout output).
fn init_logging(level: Level, format: LogFormat) {
    let filter = level_filter(level);
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Console => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Raises the soft open-file limit to the hard one and returns it.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// The host name events carry.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Few malloc arenas: a thousand tailer threads must not each get one (memory per idle file).
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator tunable; called before threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn run(cfg: Config) -> u8 {
    limit_malloc_arenas();
    let host: Arc<str> = hostname().into();
    let nofile = raise_nofile_limit();
    let derived = nofile.saturating_sub(FD_HEADROOM).max(16) as usize;
    let max_open = match cfg.inputs.files.iter().map(|f| f.max_open_files).max() {
        Some(n) if n > 0 => {
            if n > derived {
                warn!(
                    max_open_files = n,
                    limit = nofile,
                    "max_open_files is above the open-file limit; files will wait for descriptors"
                );
            }
            n
        }
        _ => derived,
    };

    // Checkpoint directories first: a problem there is a configuration error (exit 2).
    let mut inputs = Vec::new();
    let mut stores = Vec::new();
    for (i, f) in cfg.inputs.files.iter().enumerate() {
        let (store, entries) = match Store::open(&f.checkpoint_path) {
            Ok(x) => x,
            Err(e) => {
                error!("{e}");
                eprintln!("logaggregator: {e}");
                return EXIT_CONFIG;
            }
        };
        let input = Arc::new(Input::new(i, f.clone()));
        checkpoint::restore(&input.registry, &entries, &host);
        info!(input = i, checkpoint = %store.path().display(), files = entries.len(), "checkpoint loaded");
        inputs.push(input);
        stores.push(store);
    }

    let sink = match output::open(&cfg.output) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot open the output");
            eprintln!("logaggregator: cannot open the output: {e}");
            return EXIT_FATAL;
        }
    };

    let stop = Stop::new();
    let stats = Arc::new(Stats::default());
    let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES);
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let pipeline = Pipeline {
        tx,
        pool: pool.clone(),
        stop: stop.clone(),
        stats: stats.clone(),
        slots: Arc::new(OpenSlots::new(max_open)),
    };

    if let Err(e) = install_signals(stop.clone()) {
        error!(error = %e, "cannot install signal handlers");
        return EXIT_FATAL;
    }

    let output = {
        let (stop, stats, format) = (stop.clone(), stats.clone(), cfg.output.format);
        std::thread::Builder::new()
            .name("output".into())
            .spawn(move || output::run(rx, sink, format, pool, stop, stats))
    };
    let output = match output {
        Ok(h) => h,
        Err(e) => {
            error!(error = %e, "cannot start the output thread");
            return EXIT_FATAL;
        }
    };

    let mut discoveries = Vec::new();
    let mut checkpointers = Vec::new();
    for (input, store) in inputs.iter().zip(stores) {
        match discovery::spawn(input.clone(), pipeline.clone(), host.clone()) {
            Ok(h) => discoveries.push(h),
            Err(e) => {
                error!(error = %e, "cannot start a discovery thread");
                stop.trigger();
            }
        }
        checkpointers.push(spawn_checkpointer(
            input.clone(),
            store,
            stop.clone(),
            stats.clone(),
        ));
    }
    drop(pipeline);
    info!(
        inputs = inputs.len(),
        max_open_files = max_open,
        version = env!("CARGO_PKG_VERSION"),
        "logaggregator started"
    );

    // Everything runs in its threads until a signal (or a dead output) asks to stop.
    let _ = stop.receiver().recv();
    info!("stopping: finishing the lines in flight");
    spawn_shutdown_watchdog();
    for d in discoveries {
        let _ = d.join();
    }
    let mut code = EXIT_OK;
    match output.join() {
        Ok(Ok(())) => {}
        Ok(Err(f)) if f.error.kind() == std::io::ErrorKind::BrokenPipe => {
            warn!(output = %f.sink, "output closed (broken pipe); stopped without acknowledging unwritten lines");
        }
        Ok(Err(f)) => {
            error!(output = %f.sink, error = %f.error, "output failed");
            code = EXIT_FATAL;
        }
        Err(_) => {
            error!("output thread panicked");
            code = EXIT_FATAL;
        }
    }
    for (input, handle) in inputs.iter().zip(checkpointers) {
        let Some(mut store) = handle.and_then(|h| h.join().ok()) else {
            continue;
        };
        match store.write(&checkpoint::snapshot(&input.registry)) {
            Ok(_) => info!(checkpoint = %store.path().display(), "final checkpoint written"),
            Err(e) => {
                error!(checkpoint = %store.path().display(), error = %e, "final checkpoint write failed");
                code = EXIT_FATAL;
            }
        }
    }
    info!(
        lines_read = stats::get(&stats.lines_read),
        events_written = stats::get(&stats.events_written),
        "stopped"
    );
    code
}

fn install_signals(stop: Stop) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if stop.is_set() {
                    warn!(signal = sig, "second signal during shutdown; exiting now (unflushed lines are read again on restart)");
                    std::process::exit(i32::from(EXIT_FATAL));
                }
                info!(signal = sig, "signal received; shutting down");
                stop.trigger();
            }
        })?;
    Ok(())
}

fn spawn_shutdown_watchdog() {
    let _ = std::thread::Builder::new().name("watchdog".into()).spawn(|| {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        error!(deadline = ?SHUTDOWN_DEADLINE, "shutdown did not finish in time; exiting (unacknowledged lines are read again on restart)");
        std::process::exit(i32::from(EXIT_FATAL));
    });
}

/// Persists one input's acknowledged offsets every checkpoint_interval; hands the store
/// back at stop for the final write (done after the output has drained).
fn spawn_checkpointer(
    input: Arc<Input>,
    mut store: Store,
    stop: Stop,
    stats: Arc<Stats>,
) -> Option<std::thread::JoinHandle<Store>> {
    let interval = input.cfg.checkpoint_interval;
    std::thread::Builder::new()
        .name(format!("checkpoint-{}", input.index))
        .spawn(move || {
            let mut failing = false;
            let mut last_digest = None;
            while matches!(
                stop.receiver().recv_timeout(interval),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            ) {
                let digest = checkpoint::digest(&input.registry);
                if last_digest == Some(digest) && !failing {
                    continue;
                }
                match store.write(&checkpoint::snapshot(&input.registry)) {
                    Ok(written) => {
                        last_digest = Some(digest);
                        if written {
                            stats::add(&stats.checkpoint_writes, 1);
                        }
                        if failing {
                            info!(checkpoint = %store.path().display(), "checkpoint writes work again");
                            failing = false;
                        }
                    }
                    Err(e) => {
                        stats::add(&stats.checkpoint_errors, 1);
                        error!(checkpoint = %store.path().display(), error = %e,
                            "checkpoint write failed; the last good checkpoint stays, retrying every checkpoint_interval");
                        failing = true;
                    }
                }
            }
            store
        })
        .ok()
}
