//! Signals, turned into messages for the main thread: SIGHUP reloads, SIGTERM and SIGINT
//! stop, and a second stop signal during the shutdown exits at once.

use super::EXIT_FATAL;
use crossbeam_channel::Receiver;
use tracing::warn;

/// What a signal asks of the agent.
pub(super) enum Signal {
    /// SIGTERM or SIGINT (the number).
    Stop(i32),
    /// SIGHUP.
    Reload,
}

/// Starts the thread that receives the signals.
pub(super) fn install() -> std::io::Result<Receiver<Signal>> {
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
                // An operator who signals twice wants out now; what was not acknowledged is
                // read again at the next start (at-least-once holds).
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
