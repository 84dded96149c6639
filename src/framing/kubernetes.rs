//! Kubernetes fields from a log file's path. STUB: being written.

use crate::record::Map;
use std::path::Path;

/// `kubernetes: {namespace, pod, pod_uid, container}` from a pods or containers log path.
pub fn fields_from_path(path: &Path) -> Option<Map> {
    let _ = path;
    None
}
