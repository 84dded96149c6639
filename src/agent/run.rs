//! The running agent: starts the inputs, the output and the helpers, serves signals until a
//! stop, then shuts down stage by stage, upstream first.

use super::process::{self, LevelHandle};
use super::signals::{self, Signal};
use super::{EXIT_CONFIG, EXIT_FATAL, EXIT_OK, reporter};
use crate::api::Api;
use crate::checkpoint::{self, Store};
use crate::config::{Config, FileInput};
use crate::discovery::{self, Input};
use crate::event::Batch;
use crate::metrics::View;
use crate::output::{self, Controls, OutputFailed, encode::Encoder};
use crate::runtime::{BufferPool, OpenSlots, Stop};
use crate::stats::{self, Stats};
use crate::tailer::TailResources;
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Bytes a tailer reads at once.
const CHUNK_BYTES: usize = 128 * 1024;
/// Read buffers in flight across all files: bounds memory whatever the file count.
const POOL_BUFFERS: usize = 16;
/// Batches queued between tailers and the output.
const CHANNEL_BATCHES: usize = 16;
/// A shutdown that takes longer than this is abandoned (at-least-once still holds).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// How long an input stopped on its own (reload, failed start) waits for the output to
/// deliver what its tailers read before its final checkpoint.
const RETIRE_WAIT: Duration = Duration::from_secs(10);

/// One running input: its discovery thread (which starts its tailers) and its checkpoint
/// writer.
pub(super) struct RunningInput {
    /// The input: configuration, position in the config and registry of files.
    pub(super) input: Arc<Input>,
    /// Stops discovery and the tailers at a line boundary; each of them holds a clone.
    stop: Stop,
    discovery: Option<JoinHandle<()>>,
    checkpoints: checkpoint::Writer,
}

impl RunningInput {
    /// Asks the input's threads to stop (tailers stop at a line boundary); never blocks.
    pub(super) fn stop(&self) {
        self.stop.trigger();
        self.checkpoints.stop();
    }

    /// For an input stopped on its own (reload, a start that failed half-way): waits for its
    /// threads and (at most RETIRE_WAIT) for the output to acknowledge what its tailers
    /// handed on, then writes its final checkpoint. False if that write failed.
    pub(super) fn retire(mut self) -> bool {
        if let Some(d) = self.discovery.take() {
            let _ = d.join();
        }
        let deadline = Instant::now() + RETIRE_WAIT;
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
        self.checkpoints.finish()
    }
}

/// Everything an input needs from the rest of the agent.
pub(super) struct InputStarter {
    tx: Sender<Batch>,
    pool: BufferPool,
    stats: Arc<Stats>,
    slots: Arc<OpenSlots>,
    next_index: usize,
}

impl InputStarter {
    /// Opens the checkpoint store and starts an input; a checkpoint problem is returned.
    pub(super) fn start(&mut self, cfg: &FileInput) -> Result<RunningInput, String> {
        let (store, entries) = Store::open(&cfg.checkpoint_path).map_err(|e| e.0)?;
        let index = self.next_index;
        self.next_index += 1;
        let input = Arc::new(Input::new(index, cfg.clone())?);
        checkpoint::restore(&input.registry, &entries);
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
        let pipeline = TailResources {
            tx: self.tx.clone(),
            pool: self.pool.clone(),
            stop: stop.clone(),
            stats: self.stats.clone(),
            slots: self.slots.clone(),
        };
        let discovery = discovery::spawn(input.clone(), pipeline)
            .map_err(|e| format!("cannot start a discovery thread: {e}"))?;
        let checkpoints = checkpoint::Writer::start(
            index,
            input.registry.clone(),
            store,
            cfg.checkpoint_interval,
            self.stats.clone(),
        );
        Ok(RunningInput {
            input,
            stop,
            discovery: Some(discovery),
            checkpoints,
        })
    }
}

/// The agent between start and shutdown: what a reload changes.
pub(super) struct Agent {
    /// The configuration file, read again on SIGHUP.
    pub(super) config_path: PathBuf,
    /// The configuration as it runs.
    pub(super) current: Config,
    /// The inputs, in start order.
    pub(super) running: Vec<RunningInput>,
    /// What a new input is started with.
    pub(super) shared: InputStarter,
    /// Changes the log level live; None when logging was set up by someone else.
    pub(super) level: Option<LevelHandle>,
    /// What the API and the reporter read.
    pub(super) view: View,
}

impl Agent {
    /// Shows the running inputs to the API and the reporter.
    pub(super) fn publish_inputs(&self) {
        *self.view.inputs.write().unwrap_or_else(|p| p.into_inner()) =
            self.running.iter().map(|r| r.input.clone()).collect();
    }
}

/// The output thread and how to steer it.
struct OutputThread {
    ctl: Controls,
    thread: JoinHandle<Result<(), OutputFailed>>,
}

/// Runs the agent until a stop signal, then shuts it down; returns the exit code.
pub(super) fn run(cfg: Config, config_path: PathBuf, level: Option<LevelHandle>) -> u8 {
    process::limit_malloc_arenas();
    // Then, before any thread does work: a SIGTERM during start-up (inputs already
    // checkpointing) is a graceful stop once serving begins, not death by default action.
    let signals = match signals::install() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return EXIT_FATAL;
        }
    };
    let host = process::hostname();
    let max_open = process::open_file_budget(&cfg);
    let stats = Arc::new(Stats::default());
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let view = View {
        stats: stats.clone(),
        inputs: Arc::new(RwLock::new(Vec::new())),
        channel: rx.clone(),
    };
    // The API binds first: a port in use is a configuration error (exit 2).
    let api = match start_api(&cfg, &view) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES);
    let shared = InputStarter {
        tx,
        pool: pool.clone(),
        stats: stats.clone(),
        slots: Arc::new(OpenSlots::new(max_open)),
        next_index: 0,
    };
    let mut agent = Agent {
        config_path,
        current: cfg,
        running: Vec::new(),
        shared,
        level,
        view,
    };
    // Checkpoint directories next: a problem there is a configuration error (exit 2).
    if let Err(code) = start_inputs(&mut agent) {
        return code;
    }
    let output = match start_output(&mut agent, rx, pool, &host) {
        Ok(o) => o,
        Err(code) => return code,
    };
    agent.publish_inputs();
    let reporter = Reporter::start(agent.view.clone(), agent.current.logging.stats_interval);
    info!(
        inputs_running = agent.running.len(),
        max_open_files = max_open,
        version = env!("CARGO_PKG_VERSION"),
        "logaggregator started"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    serve(&mut agent, &signals, &output.ctl.stop);
    let code = shutdown(stages(agent, output, reporter, api));
    info!(
        lines_read = stats::get(&stats.lines_read),
        events_written = stats::get(&stats.events_written),
        "stopped"
    );
    code
}

/// Starts the HTTP API if one is configured; an address it cannot bind is a configuration
/// error (exit 2).
fn start_api(cfg: &Config, view: &View) -> Result<Option<Api>, u8> {
    let Some(a) = &cfg.api else {
        return Ok(None);
    };
    match Api::start(&a.listen, view.clone()) {
        Ok(api) => Ok(Some(api)),
        Err(e) => {
            eprintln!("logaggregator: configuration error: api.listen: {e}");
            Err(EXIT_CONFIG)
        }
    }
}

/// Starts every configured input. A checkpoint directory that cannot be used is a
/// configuration error (exit 2): the inputs already started are retired again.
fn start_inputs(agent: &mut Agent) -> Result<(), u8> {
    for f in &agent.current.inputs.files {
        match agent.shared.start(f) {
            Ok(r) => agent.running.push(r),
            Err(e) => {
                eprintln!("logaggregator: {e}");
                retire_all(std::mem::take(&mut agent.running));
                return Err(EXIT_CONFIG);
            }
        }
    }
    Ok(())
}

/// Opens the sink and starts the output thread. A sink that cannot be opened retires the
/// inputs again (exit 1).
fn start_output(
    agent: &mut Agent,
    rx: Receiver<Batch>,
    pool: BufferPool,
    host: &str,
) -> Result<OutputThread, u8> {
    let cfg = &agent.current.output;
    let sink = match output::open(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("logaggregator: cannot open the output: {e}");
            retire_all(std::mem::take(&mut agent.running));
            return Err(EXIT_FATAL);
        }
    };
    let o = output::Output {
        rx,
        sink,
        encoder: Encoder::new(cfg.format, host),
        pool,
        stats: agent.shared.stats.clone(),
    };
    let ctl = Controls::default();
    let thread = {
        let ctl = ctl.clone();
        std::thread::Builder::new()
            .name("output".into())
            .spawn(move || output::run(o, ctl))
    };
    match thread {
        Ok(thread) => Ok(OutputThread { ctl, thread }),
        Err(e) => {
            error!(error = %e, "cannot start the output thread");
            Err(EXIT_FATAL)
        }
    }
}

/// Stops and retires inputs (a start that failed half-way): stop all, then retire each.
fn retire_all(running: Vec<RunningInput>) {
    for r in &running {
        r.stop();
    }
    for r in running {
        r.retire();
    }
}

/// Everything runs in its threads until a stop signal (or a dead output); SIGHUP reloads.
fn serve(agent: &mut Agent, signals: &Receiver<Signal>, output_stopped: &Stop) {
    loop {
        crossbeam_channel::select! {
            recv(signals) -> sig => match sig {
                Ok(Signal::Reload) => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    agent.reload();
                    agent.publish_inputs();
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
                Ok(Signal::Stop(n)) => {
                    info!(signal = n, "signal received; shutting down");
                    return;
                }
                Err(_) => return,
            },
            recv(output_stopped.receiver()) -> _ => return,
        }
    }
}

/// A part of the running agent that shutdown stops and then waits for.
trait Stage {
    /// Names the stage in the debug log.
    fn name(&self) -> &'static str;
    /// Asks it to stop; never blocks.
    fn stop(&mut self);
    /// Waits until it has ended; false if it failed (exit code 1).
    fn join(self: Box<Self>) -> bool;
}

/// The stages in shutdown order: each is joined only after every stage before it, so a
/// stage ends after everything that feeds it has.
fn stages(
    agent: Agent,
    output: OutputThread,
    reporter: Reporter,
    api: Option<Api>,
) -> Vec<Box<dyn Stage>> {
    let mut reading = Reading {
        inputs: Vec::new(),
        output_ended: output.ctl.ended.clone(),
    };
    let mut checkpoints = Checkpoints {
        writers: Vec::new(),
    };
    for r in agent.running {
        reading.inputs.push((r.stop, r.discovery));
        checkpoints.writers.push(r.checkpoints);
    }
    vec![
        Box::new(reporter),
        Box::new(reading),
        Box::new(output),
        Box::new(checkpoints),
        Box::new(ApiStage(api)),
    ]
}

/// Stops the agent: first every stage is asked to stop (in order; none of that blocks),
/// then each is joined in order. A watchdog ends a shutdown that hangs. Returns the exit
/// code: 1 if a stage failed.
fn shutdown(stages: Vec<Box<dyn Stage>>) -> u8 {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!("stopping: finishing the lines in flight");
    run_stages(stages, spawn_shutdown_watchdog)
}

/// Stops every stage, calls `stopped`, then joins every stage; the exit code.
fn run_stages(mut stages: Vec<Box<dyn Stage>>, stopped: impl FnOnce()) -> u8 {
    for s in &mut stages {
        s.stop();
    }
    stopped();
    let mut code = EXIT_OK;
    for s in stages {
        let (name, t0) = (s.name(), Instant::now());
        if !s.join() {
            code = EXIT_FATAL;
        }
        debug!(stage = name, took = ?t0.elapsed(), "shutdown stage done");
    }
    code
}

fn spawn_shutdown_watchdog() {
    let _ = std::thread::Builder::new().name("watchdog".into()).spawn(|| {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        error!(deadline = ?SHUTDOWN_DEADLINE, "shutdown did not finish in time; exiting (unacknowledged lines are read again on restart)");
        std::process::exit(i32::from(EXIT_FATAL));
    });
}

/// Stage 1, the reporter: nothing depends on it; it stops sampling at once.
struct Reporter {
    stop: Stop,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the reporter thread (the agent runs on without it if it cannot start).
    fn start(view: View, every: Duration) -> Reporter {
        let stop = Stop::new();
        let thread = reporter::spawn(view, every, stop.clone());
        Reporter { stop, thread }
    }
}

impl Stage for Reporter {
    fn name(&self) -> &'static str {
        "reporter"
    }
    fn stop(&mut self) {
        self.stop.trigger();
    }
    fn join(self: Box<Self>) -> bool {
        if let Some(t) = self.thread {
            let _ = t.join();
        }
        true
    }
}

/// Stage 2, reading: discovery and the tailers of every input. Stop: tailers stop at a line
/// boundary. Join: the discovery threads (which close their parked tailers), then every
/// tailer thread, seen by the input's stop signal having no other holder left. After
/// this, nothing enters the channel.
struct Reading {
    inputs: Vec<(Stop, Option<JoinHandle<()>>)>,
    /// The output's `ended`: once nothing drains the channel (the output panicked), a
    /// tailer may wait on a full channel for ever, and waiting for it would only delay the
    /// final checkpoints.
    output_ended: Stop,
}

impl Stage for Reading {
    fn name(&self) -> &'static str {
        "reading"
    }
    fn stop(&mut self) {
        for (stop, _) in &self.inputs {
            stop.trigger();
        }
    }
    fn join(self: Box<Self>) -> bool {
        for (stop, discovery) in self.inputs {
            if let Some(d) = discovery {
                let _ = d.join();
            }
            // Tailer threads are detached (they park and resume); each holds the signal
            // until it has handed on its last batch and let go of its file.
            while stop.holders() > 1 && !self.output_ended.is_set() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }
}

/// Stage 3, the output. Stop: a failing write is not retried any more (it would hold the tailers
/// up behind a full channel). Join: it is told that the input has ended, writes what is
/// queued and returns. A closed stdout pipe is a clean end (`logaggregator | head`).
impl Stage for OutputThread {
    fn name(&self) -> &'static str {
        "output"
    }
    fn stop(&mut self) {
        self.ctl.stop.trigger();
    }
    fn join(self: Box<Self>) -> bool {
        self.ctl.end_of_input.trigger();
        match self.thread.join() {
            Ok(Ok(())) => true,
            Ok(Err(f)) if f.error.kind() == std::io::ErrorKind::BrokenPipe => {
                warn!(output = %f.sink, "output closed (broken pipe); stopped without acknowledging unwritten lines");
                true
            }
            Ok(Err(f)) => {
                error!(output = %f.sink, error = %f.error, "output failed");
                false
            }
            Err(_) => {
                error!("output thread panicked");
                false
            }
        }
    }
}

/// Stage 4, checkpoints. Stop: no more periodic writes. Join: each input's final checkpoint,
/// which now covers every line the output wrote.
struct Checkpoints {
    writers: Vec<checkpoint::Writer>,
}

impl Stage for Checkpoints {
    fn name(&self) -> &'static str {
        "checkpoints"
    }
    fn stop(&mut self) {
        for w in &self.writers {
            w.stop();
        }
    }
    fn join(self: Box<Self>) -> bool {
        let mut ok = true;
        for w in self.writers {
            ok &= w.finish();
        }
        ok
    }
}

/// Stage 5, the HTTP API, last, so that `/health` and `/metrics` answer during the shutdown.
struct ApiStage(Option<Api>);

impl Stage for ApiStage {
    fn name(&self) -> &'static str {
        "api"
    }
    fn stop(&mut self) {}
    fn join(self: Box<Self>) -> bool {
        if let Some(api) = self.0 {
            api.stop();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stage that logs its calls.
    struct Logged(&'static str, Arc<Mutex<Vec<String>>>, bool);

    impl Stage for Logged {
        fn name(&self) -> &'static str {
            self.0
        }
        fn stop(&mut self) {
            self.1.lock().unwrap().push(format!("stop {}", self.0));
        }
        fn join(self: Box<Self>) -> bool {
            self.1.lock().unwrap().push(format!("join {}", self.0));
            self.2
        }
    }

    #[test]
    fn every_stage_is_stopped_then_each_joined_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(Logged("a", log.clone(), true)),
            Box::new(Logged("b", log.clone(), false)),
            Box::new(Logged("c", log.clone(), true)),
        ];
        let code = run_stages(stages, || log.lock().unwrap().push("stopped".into()));
        assert_eq!(code, EXIT_FATAL, "b failed");
        let want = [
            "stop a", "stop b", "stop c", "stopped", "join a", "join b", "join c",
        ];
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[test]
    fn reading_waits_for_every_thread_that_holds_the_stop() {
        let stop = Stop::new();
        let tailer = {
            let held = stop.clone();
            std::thread::spawn(move || {
                let _ = held.receiver().recv();
                std::thread::sleep(Duration::from_millis(50));
                drop(held);
            })
        };
        let mut reading = Box::new(Reading {
            inputs: vec![(stop, None)],
            output_ended: Stop::new(),
        });
        let t0 = Instant::now();
        reading.stop();
        assert!(reading.join());
        assert!(t0.elapsed() >= Duration::from_millis(50));
        tailer.join().unwrap();
    }

    #[test]
    fn reading_does_not_wait_once_the_output_has_ended() {
        let stop = Stop::new();
        // A tailer stuck on a full channel that nothing drains.
        let stuck = stop.clone();
        let ended = Stop::new();
        ended.trigger();
        let reading = Box::new(Reading {
            inputs: vec![(stop, None)],
            output_ended: ended,
        });
        assert!(reading.join());
        drop(stuck);
    }
}
