//! Processors: applied in order to every event of an input (parse_json, parse_regex,
//! parse_logfmt, parse_delimited, timestamp, filter, set, rename, remove, redact).
//! STUB: being written; the API below is fixed.

use crate::config::ProcessorConfig;
use crate::record::Event;

/// An input's processors, compiled.
#[derive(Debug, Default, Clone)]
pub struct Processors {}

impl Processors {
    /// Compiles `configs` of input `input_id`; `at` is the key path of the list
    /// (`inputs.files[0].processors`). An error names the key: `<at>[2].pattern: ...`.
    pub fn build(
        configs: &[ProcessorConfig],
        at: &str,
        input_id: &str,
    ) -> Result<Processors, String> {
        let _ = (configs, at, input_id);
        Ok(Processors {})
    }

    /// Runs the event through every processor; None when a filter dropped it.
    pub fn apply(&mut self, e: Event) -> Option<Event> {
        Some(e)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        true
    }
}
