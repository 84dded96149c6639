//! SIGHUP: re-reads the configuration and applies what can change while running.

use super::process::level_filter;
use super::run::{Agent, RunningInput};
use crate::config::Config;
use tracing::{error, info, warn};

impl Agent {
    /// Re-reads the config. Unchanged inputs keep their tailers and offsets; removed or
    /// changed ones stop after a final checkpoint (a changed one then starts again from it);
    /// new ones start. An invalid config changes nothing.
    pub(super) fn reload(&mut self) {
        let new = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "reload: the new configuration is invalid; keeping the running one");
                return;
            }
        };
        self.apply_logging(&new);
        self.restart_inputs(&new);
        let current = &mut self.current;
        let kept_output = current.output.clone();
        let kept_api = current.api.clone();
        let kept_format = current.logging.format;
        *current = new;
        // What did not change live stays as it runs, so the next reload compares against it.
        current.output = kept_output;
        current.api = kept_api;
        current.logging.format = kept_format;
        info!(inputs = self.running.len(), "reload: configuration applied");
    }

    /// The log level changes at once; what only a restart applies is said so.
    fn apply_logging(&self, new: &Config) {
        let current = &self.current;
        if let Some(h) = &self.level
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
    }

    /// Stops the inputs that are gone or changed, then starts the new ones.
    fn restart_inputs(&mut self, new: &Config) {
        // Stop the inputs that are gone or changed first: that frees their checkpoint directories.
        let (keep, gone): (Vec<RunningInput>, Vec<RunningInput>) =
            std::mem::take(&mut self.running)
                .into_iter()
                .partition(|r| new.inputs.files.contains(&r.input.cfg));
        for r in &gone {
            r.stop();
        }
        for r in gone {
            info!(input = r.input.index, paths = ?r.input.cfg.paths, "reload: input removed or changed; stopping it");
            r.retire();
        }
        self.running = keep;
        for f in &new.inputs.files {
            if self.running.iter().any(|r| &r.input.cfg == f) {
                continue;
            }
            match self.shared.start(f) {
                Ok(r) => self.running.push(r),
                Err(e) => error!(error = %e, "reload: cannot start input"),
            }
        }
    }
}
