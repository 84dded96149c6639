//! What the agent sets up about its own process before it starts working: its logging, the
//! open-file limit, malloc's arenas, and the host name its events carry.

use crate::config::{Config, Level, LogFormat};
use tracing::warn;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

/// Descriptors kept back from max_open_files for the output, sockets and directories.
const FD_HEADROOM: u64 = 64;

/// The tracing filter of a configured level.
pub(super) fn level_filter(l: Level) -> LevelFilter {
    match l {
        Level::Trace => LevelFilter::TRACE,
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error => LevelFilter::ERROR,
    }
}

/// Changes the log level of a running agent (SIGHUP applies `logging.level` live).
pub(super) type LevelHandle = reload::Handle<LevelFilter, tracing_subscriber::Registry>;

/// Sends the agent's own logs to stderr (stdout belongs to the stdout output).
pub(super) fn init_logging(level: Level, format: LogFormat) -> Option<LevelHandle> {
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

/// Raises the open-file limit and returns how many files may be open at once: the largest
/// `max_open_files` of the inputs, or (0) what the limit leaves after the headroom.
pub(super) fn open_file_budget(cfg: &Config) -> usize {
    let nofile = raise_nofile_limit();
    let derived = nofile.saturating_sub(FD_HEADROOM).max(16) as usize;
    match cfg.inputs.files.iter().map(|f| f.max_open_files).max() {
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
    }
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
pub(super) fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator tunable; called before threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_name_is_always_there() {
        assert!(!hostname().is_empty());
    }

    #[test]
    fn the_budget_keeps_headroom_unless_configured() {
        let mut cfg = Config::parse("inputs: {files: [{paths: [x]}]}", &|_| None).unwrap();
        let derived = open_file_budget(&cfg);
        assert!(derived >= 16);
        cfg.inputs.files[0].max_open_files = 7;
        assert_eq!(open_file_budget(&cfg), 7);
    }
}
