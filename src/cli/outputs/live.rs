//! Step files written while the run goes on: each finished step's
//! `steps/STEP.json` is written beside its place (a temporary in `steps/`)
//! by a thread of its own, so a run's many files cost the run (the engine's
//! thread) almost nothing and the end of the run has only its few
//! whole-run files left to write.
//!
//! Nothing is put in place here: the end of the run ([`super::write`])
//! renames the files whose content is still the final record's into place
//! with the run's other files, so an interrupted run leaves the output
//! directory as it was, as without this thread. A run that
//! ends without writing its results removes them ([`Live::discard`]).

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::{Staged, pretty, sha256_hex, stage_with, step_file_name};
use crate::engine::Event;

/// The thread writing a run's step files; ends when the engine's last
/// event sender is dropped.
pub struct Live {
    thread: std::thread::JoinHandle<Ready>,
}

/// Step file name (`steps/STEP.json`) -> its temporary and the SHA-256 of
/// what it holds.
pub(super) type Ready = HashMap<String, (Staged, String)>;

impl Live {
    /// Write the step file of every `StepFinished` the engine sends beside
    /// its place in `dir`, handing every event on to `forward` (the progress
    /// display) when one is given. A directory that cannot be prepared, or a
    /// file that cannot be written, only stops this: the end of the run
    /// writes what is missing and reports the error.
    pub fn start(
        dir: &Path,
        events: UnboundedReceiver<crate::engine::Event>,
        forward: Option<UnboundedSender<Event>>,
    ) -> std::io::Result<Live> {
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("pallet-outputs".to_string())
            .spawn(move || write_all(&dir, events, forward))?;
        Ok(Live { thread })
    }

    /// Wait until every step file sent is written; what is ready.
    pub(super) fn ready(self) -> Ready {
        self.thread.join().unwrap_or_default()
    }

    /// The run writes no results (it was interrupted, or it has no record):
    /// remove the step files written for it; the directory stays as it was.
    pub fn discard(self) {
        discard_all(self.ready());
    }
}

/// Remove the temporaries of `ready`.
pub(super) fn discard_all(ready: Ready) {
    ready.into_values().for_each(|(staged, _)| staged.discard());
}

/// The thread: take every event queued, write the step files among them,
/// forward the events; until the engine is done.
fn write_all(
    dir: &Path,
    mut events: UnboundedReceiver<Event>,
    forward: Option<UnboundedSender<Event>>,
) -> Ready {
    let mut ready = Ready::new();
    let mut writing = super::prepare(dir).is_ok();
    while let Some(first) = events.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(event) = events.try_recv() {
            batch.push(event);
        }
        // `steps/` swapped for a link since: write nothing more through it.
        writing = writing && super::create_real_dir(&dir.join("steps")).is_ok();
        for event in batch {
            if writing
                && let Event::StepFinished { step, record } = &event
                && let Err(error) = write_one(dir, step, record, &mut ready)
            {
                tracing::debug!(%error, "step files are left for the end of the run");
                writing = false;
            }
            if let Some(forward) = &forward {
                // A closed display only means nobody watches any more.
                let _ = forward.send(event);
            }
        }
    }
    ready
}

/// Write a step's file beside its place, as the end of the run would write
/// it (a nested step's record under its qualified id, as in the run's
/// record). A step finished again (by its handler) replaces its file.
fn write_one(
    dir: &Path,
    step: &str,
    record: &crate::engine::StepRecord,
    ready: &mut Ready,
) -> std::io::Result<()> {
    let text = if record.id == step {
        pretty(record)
    } else {
        let mut qualified = record.clone();
        qualified.id = step.to_string();
        pretty(&qualified)
    };
    let name = step_file_name(step);
    let staged = stage_with(&dir.join(&name), |file| {
        std::io::Write::write_all(file, text.as_bytes())
    })?;
    let hash = sha256_hex(text.as_bytes());
    if let Some((superseded, _)) = ready.insert(name, (staged, hash)) {
        superseded.discard();
    }
    Ok(())
}
