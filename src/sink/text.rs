//! The short human summary printed at the end of a run. STUB.

use std::path::Path;

use crate::model::Summary;

/// Renders the summary a person reads at the end of a run.
pub fn render(summary: &Summary, results_dir: &Path) -> String {
    let _ = (summary, results_dir);
    unimplemented!()
}
