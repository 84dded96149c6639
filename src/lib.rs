//! logaggregator: tails globbed log files through rotation and ships every line to an output.
//!
//! Data flow (see DESIGN.md): config → discovery → tailer → output → checkpoint.

pub mod ack;
pub mod agent;
pub mod api;
pub mod checkpoint;
pub mod condition;
pub mod config;
pub mod discovery;
pub mod event;
pub mod framing;
pub mod identity;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod processors;
pub mod record;
pub mod runtime;
pub mod stats;
pub mod status;
pub mod tailer;
