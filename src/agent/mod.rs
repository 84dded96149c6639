//! Wiring: loads the config, starts discovery, output and checkpoint threads, handles
//! signals, and shuts down in order (tailers stop, channel drains, output flushes, final
//! checkpoint).

use crate::api::Api;
use crate::checkpoint::{self, Store};
use crate::config::{CheckpointDir, Config, FileInput, Level, LogFormat, check_checkpoint_dir};
use crate::discovery::{self, Input};
use crate::event::{Batch, BufferPool, OpenSlots, Stop};
use crate::metrics::View;
use crate::output;
use crate::stats::{self, Stats};
use crate::tailer::Pipeline;
use clap::{Parser, Subcommand};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

/// Bytes a tailer reads at once.
const CHUNK_BYTES: usize = 128 * 1024;
/// Read buffers in flight across all files: bounds memory whatever the file count.
const POOL_BUFFERS: usize = 16;
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
    if let Some(Command::Status { json }) = cli.command {
        return crate::status::print(&cfg, json);
    }
    let level = init_logging(cfg.logging.level, cfg.logging.format);
    run(cfg, path, level)
}

/// `--check`: every checkpoint directory must be usable (as a start needs it), then prints
/// what each input matches now. Exit 0 or, with the first problem on stderr, 2.
fn print_check(path: &std::path::Path, cfg: &Config) -> u8 {
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
        let input = Input::new(i, f.clone());
        println!("input {i} (inputs.files[{i}]):");
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

fn level_filter(l: Level) -> LevelFilter {
    match l {
        Level::Trace => LevelFilter::TRACE,
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error => LevelFilter::ERROR,
    }
}

/// Changes the log level of a running agent (SIGHUP applies `logging.level` live).
type LevelHandle = reload::Handle<LevelFilter, tracing_subscriber::Registry>;

/// Sends the agent's own logs to stderr (stdout belongs to the stdout output).
fn init_logging(level: Level, format: LogFormat) -> Option<LevelHandle> {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Console => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .ok()
        .map(|_| handle)
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

/// One running input: its discovery thread, checkpoint thread and stop signal.
struct Running {
    input: Arc<Input>,
    stop: Stop,
    discovery: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<Store>>,
}

/// Everything an input needs from the rest of the agent.
struct Shared {
    tx: Sender<Batch>,
    pool: BufferPool,
    stats: Arc<Stats>,
    slots: Arc<OpenSlots>,
    host: Arc<str>,
    next_index: usize,
}

impl Shared {
    /// Opens the checkpoint store and starts an input; a checkpoint problem is returned.
    fn start(&mut self, cfg: &FileInput) -> Result<Running, String> {
        let (store, entries) = Store::open(&cfg.checkpoint_path).map_err(|e| e.0)?;
        let index = self.next_index;
        self.next_index += 1;
        let input = Arc::new(Input::new(index, cfg.clone()));
        checkpoint::restore(&input.registry, &entries, &self.host);
        // `input` is the position in inputs.files (inputs started by a reload get the next
        // unused number); files_matched: files its globs match now; checkpointed_files: files
        // its checkpoint remembers.
        info!(input = index, files_matched = input.matched().len(), checkpointed_files = entries.len(),
            checkpoint = %store.path().display(), paths = ?cfg.paths, "input started");
        if store.found_unclean() {
            warn!(input = index, checkpoint = %store.path().display(), interval = ?cfg.checkpoint_interval,
                "the previous run did not stop cleanly (crash, kill -9 or power loss): lines it delivered after its last checkpoint, at most checkpoint_interval's worth, are delivered again");
        }
        let stop = Stop::new();
        let pipeline = Pipeline {
            tx: self.tx.clone(),
            pool: self.pool.clone(),
            stop: stop.clone(),
            stats: self.stats.clone(),
            slots: self.slots.clone(),
        };
        let discovery = discovery::spawn(input.clone(), pipeline, self.host.clone())
            .map_err(|e| format!("cannot start a discovery thread: {e}"))?;
        let checkpointer =
            spawn_checkpointer(input.clone(), store, stop.clone(), self.stats.clone());
        Ok(Running {
            input,
            stop,
            discovery: Some(discovery),
            checkpointer,
        })
    }
}

impl Running {
    /// Asks the input to stop (tailers stop at a line boundary).
    fn signal_stop(&self) {
        self.stop.trigger();
    }

    /// Waits for the input's threads and writes its final checkpoint. When `drained` is
    /// false the caller has not waited for the output, so this waits (boundedly) for the
    /// output to acknowledge what the input's tailers handed on.
    fn finish(mut self, drained: bool) -> bool {
        if let Some(d) = self.discovery.take() {
            let _ = d.join();
        }
        if !drained {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let busy = self.input.registry.all().iter().any(|st| {
                    let p = st.progress();
                    st.is_active() || p.acked_offset < p.read_offset
                });
                if !busy {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let Some(mut store) = self.checkpointer.take().and_then(|h| h.join().ok()) else {
            return false;
        };
        match store.write_final(&checkpoint::snapshot(&self.input.registry)) {
            Ok(_) => {
                info!(input = self.input.index, checkpoint = %store.path().display(), "final checkpoint written");
                true
            }
            Err(e) => {
                error!(input = self.input.index, checkpoint = %store.path().display(), error = %e, "final checkpoint write failed");
                false
            }
        }
    }
}

enum Signal {
    Stop(i32),
    Reload,
}

fn run(cfg: Config, config_path: PathBuf, level: Option<LevelHandle>) -> u8 {
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

    let stats = Arc::new(Stats::default());
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let view = View {
        stats: stats.clone(),
        inputs: Arc::new(RwLock::new(Vec::new())),
        channel: rx.clone(),
    };
    // The API binds first: a port in use is a configuration error (exit 2).
    let api = match &cfg.api {
        Some(a) => match Api::start(&a.listen, view.clone()) {
            Ok(api) => Some(api),
            Err(e) => {
                eprintln!("logaggregator: configuration error: api.listen: {e}");
                return EXIT_CONFIG;
            }
        },
        None => None,
    };

    let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES);
    let mut shared = Shared {
        tx,
        pool: pool.clone(),
        stats: stats.clone(),
        slots: Arc::new(OpenSlots::new(max_open)),
        host,
        next_index: 0,
    };
    // Checkpoint directories next: a problem there is a configuration error (exit 2).
    let mut running: Vec<Running> = Vec::new();
    for f in &cfg.inputs.files {
        match shared.start(f) {
            Ok(r) => running.push(r),
            Err(e) => {
                eprintln!("logaggregator: {e}");
                for r in running {
                    r.signal_stop();
                    r.finish(false);
                }
                return EXIT_CONFIG;
            }
        }
    }

    let sink = match output::open(&cfg.output) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("logaggregator: cannot open the output: {e}");
            for r in running {
                r.signal_stop();
                r.finish(false);
            }
            return EXIT_FATAL;
        }
    };
    let output_stop = Stop::new();
    let output = {
        let (stop, stats, format) = (output_stop.clone(), stats.clone(), cfg.output.format);
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
    let signals = match install_signals() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return EXIT_FATAL;
        }
    };
    set_view(&view, &running);
    let reporter = spawn_reporter(
        view.clone(),
        cfg.logging.stats_interval,
        output_stop.clone(),
    );
    info!(
        inputs_running = running.len(),
        max_open_files = max_open,
        version = env!("CARGO_PKG_VERSION"),
        "logaggregator started"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    // Everything runs in its threads until a stop signal (or a dead output); SIGHUP reloads.
    let mut current = cfg;
    loop {
        crossbeam_channel::select! {
            recv(signals) -> sig => match sig {
                Ok(Signal::Reload) => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    reload(&config_path, &mut current, &mut running, &mut shared, level.as_ref());
                    set_view(&view, &running);
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
                Ok(Signal::Stop(n)) => {
                    info!(signal = n, "signal received; shutting down");
                    break;
                }
                Err(_) => break,
            },
            recv(output_stop.receiver()) -> _ => break,
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!("stopping: finishing the lines in flight");
    // A healthy output drains everything; a failing one now gives up instead of retrying.
    output_stop.trigger();
    spawn_shutdown_watchdog();
    for r in &running {
        r.signal_stop();
    }
    for r in &mut running {
        if let Some(d) = r.discovery.take() {
            let _ = d.join();
        }
    }
    // The output ends when the last tailer hangs up; every input's sender goes with `shared`.
    drop(shared);
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
    for r in running {
        if !r.finish(true) {
            code = EXIT_FATAL;
        }
    }
    if let Some(r) = reporter {
        let _ = r.join();
    }
    if let Some(api) = api {
        api.stop();
    }
    info!(
        lines_read = stats::get(&stats.lines_read),
        events_written = stats::get(&stats.events_written),
        "stopped"
    );
    code
}

fn set_view(view: &View, running: &[Running]) {
    *view.inputs.write().unwrap_or_else(|p| p.into_inner()) =
        running.iter().map(|r| r.input.clone()).collect();
}

/// SIGHUP: re-reads the config. Unchanged inputs keep their tailers and offsets; removed ones
/// stop after a final checkpoint; new ones start. An invalid config changes nothing.
fn reload(
    path: &Path,
    current: &mut Config,
    running: &mut Vec<Running>,
    shared: &mut Shared,
    level: Option<&LevelHandle>,
) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "reload: the new configuration is invalid; keeping the running one");
            return;
        }
    };
    if let Some(h) = level
        && new.logging.level != current.logging.level
    {
        match h.modify(|f| *f = level_filter(new.logging.level)) {
            Ok(()) => info!(level = ?new.logging.level, "reload: log level changed"),
            Err(e) => warn!(error = %e, "reload: cannot change the log level"),
        }
    }
    for (what, changed) in [
        ("output", new.output != current.output),
        ("api", new.api != current.api),
        (
            "logging.format",
            new.logging.format != current.logging.format,
        ),
    ] {
        if changed {
            warn!("reload: {what} changes take effect at the next restart");
        }
    }
    // Stop the inputs that are gone or changed first: that frees their checkpoint directories.
    let (keep, gone): (Vec<Running>, Vec<Running>) = std::mem::take(running)
        .into_iter()
        .partition(|r| new.inputs.files.contains(&r.input.cfg));
    for r in &gone {
        r.signal_stop();
    }
    for r in gone {
        info!(input = r.input.index, paths = ?r.input.cfg.paths, "reload: input removed or changed; stopping it");
        r.finish(false);
    }
    *running = keep;
    for f in &new.inputs.files {
        if running.iter().any(|r| &r.input.cfg == f) {
            continue;
        }
        match shared.start(f) {
            Ok(r) => running.push(r),
            Err(e) => error!(error = %e, "reload: cannot start input"),
        }
    }
    let kept_output = current.output.clone();
    let kept_api = current.api.clone();
    let kept_format = current.logging.format;
    *current = new;
    // What did not change live stays as it runs, so the next reload compares against it.
    current.output = kept_output;
    current.api = kept_api;
    current.logging.format = kept_format;
    info!(inputs = running.len(), "reload: configuration applied");
}

fn install_signals() -> std::io::Result<Receiver<Signal>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    let _ = tx.send(Signal::Reload);
                    continue;
                }
                if stopping {
                    warn!(signal = sig, "second signal during shutdown; exiting now (unflushed lines are read again on restart)");
                    std::process::exit(i32::from(EXIT_FATAL));
                }
                stopping = true;
                let _ = tx.send(Signal::Stop(sig));
            }
        })?;
    Ok(rx)
}

fn spawn_shutdown_watchdog() {
    let _ = std::thread::Builder::new().name("watchdog".into()).spawn(|| {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        error!(deadline = ?SHUTDOWN_DEADLINE, "shutdown did not finish in time; exiting (unacknowledged lines are read again on restart)");
        std::process::exit(i32::from(EXIT_FATAL));
    });
}

/// Samples throughput every second (for `/stats`) and logs a stats line every
/// `logging.stats_interval` (0 = never).
fn spawn_reporter(view: View, every: Duration, stop: Stop) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reporter".into())
        .spawn(move || {
            let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
            samples.push_back((view.stats.started, 0));
            let mut last_log = Instant::now();
            let mut last_events = 0u64;
            while stop
                .receiver()
                .recv_timeout(Duration::from_secs(1))
                .is_err()
                && !stop.is_set()
            {
                let now = Instant::now();
                let events = stats::get(&view.stats.events_written);
                samples.push_back((now, events));
                while samples.len() > 11 {
                    samples.pop_front();
                }
                if let (Some(a), Some(b)) = (samples.front(), samples.back()) {
                    let secs = b.0.duration_since(a.0).as_secs_f64();
                    let rate = if secs > 0.0 {
                        (b.1 - a.1) as f64 / secs
                    } else {
                        0.0
                    };
                    view.stats
                        .current_throughput
                        .store(rate.to_bits(), Ordering::Relaxed);
                }
                if !every.is_zero() && last_log.elapsed() >= every {
                    let secs = last_log.elapsed().as_secs_f64();
                    let doc = view.stats_doc();
                    info!(
                        events_per_sec = format!("{:.1}", (events - last_events) as f64 / secs),
                        total_processed = doc.total_processed,
                        files_open = doc.files_open,
                        lag_bytes = doc.lag_bytes,
                        lines_truncated = doc.lines_truncated,
                        "stats"
                    );
                    last_log = Instant::now();
                    last_events = events;
                }
            }
        })
        .ok()
}

/// Persists one input's acknowledged offsets every checkpoint_interval; hands the store
/// back at stop for the final write (done after the output has drained).
fn spawn_checkpointer(
    input: Arc<Input>,
    mut store: Store,
    stop: Stop,
    stats: Arc<Stats>,
) -> Option<JoinHandle<Store>> {
    let interval = input.cfg.checkpoint_interval;
    std::thread::Builder::new()
        .name(format!("checkpoint-{}", input.index))
        .spawn(move || {
            let mut failing = false;
            let mut last_digest = None;
            let path = store.path().display().to_string();
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
                            info!(checkpoint = %path, "checkpoint writes work again");
                            stats.checkpoint_result(&path, None);
                            failing = false;
                        }
                    }
                    Err(e) => {
                        stats::add(&stats.checkpoint_errors, 1);
                        error!(checkpoint = %path, error = %e,
                            "checkpoint write failed; the last good checkpoint stays, retrying every checkpoint_interval");
                        stats.checkpoint_result(&path, Some(e.to_string()));
                        failing = true;
                    }
                }
            }
            store
        })
        .ok()
}
