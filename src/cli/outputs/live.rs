//! Step files written while the run goes on: each finished step's
//! `steps/STEP.json` is put in place by a thread of its own, so a run's many
//! files cost the run (the engine's thread) almost nothing and the end of the
//! run has only its few whole-run files left to write. A step's file appears
//! in the output directory as soon as the step is over.
//!
//! The files put in place here are listed in the manifest only at the end
//! ([`super::write`] keeps those whose content is still the final record's
//! and syncs them with the run's other files: one wait for the disk at the
//! end instead of one per step);
//! a run that ends without writing its results removes them again
//! ([`Live::discard`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::{Staged, pretty, sha256_hex, stage_with, step_file_name};
use crate::engine::Event;

/// The thread writing a run's step files; ends when the engine's last
/// event sender is dropped.
pub struct Live {
    thread: std::thread::JoinHandle<Placed>,
}

/// Step file name (`steps/STEP.json`) -> the SHA-256 of what was put in place.
pub(super) type Placed = HashMap<String, String>;

impl Live {
    /// Write the step file of every `StepFinished` the engine sends into
    /// `dir`, handing every event on to `forward` (the progress display) when
    /// one is given. A directory that cannot be prepared, or a file that
    /// cannot be written, only stops this: the end of the run writes what is
    /// missing and reports the error.
    pub fn start(
        dir: &Path,
        events: UnboundedReceiver<crate::engine::Event>,
        forward: Option<UnboundedSender<Event>>,
    ) -> std::io::Result<Live> {
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("pallet-outputs".to_string())
            .spawn(move || place_all(&dir, events, forward))?;
        Ok(Live { thread })
    }

    /// Wait until every step file sent is in place; what is there.
    pub(super) fn placed(self) -> Placed {
        self.thread.join().unwrap_or_default()
    }

    /// The run writes no results (it was interrupted, or it has no record):
    /// remove the step files put in place, which no manifest lists.
    pub fn discard(self, dir: &Path) {
        for name in self.placed().into_keys() {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

/// The thread: take every event queued, write the step files among them,
/// forward the events; until the engine is done.
fn place_all(
    dir: &Path,
    mut events: UnboundedReceiver<Event>,
    forward: Option<UnboundedSender<Event>>,
) -> Placed {
    let mut placed = Placed::new();
    let mut writing = super::prepare(dir).is_ok();
    while let Some(first) = events.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(event) = events.try_recv() {
            batch.push(event);
        }
        let mut files = Vec::new();
        for event in batch {
            if writing && let Event::StepFinished { step, record } = &event {
                files.push(step_file(step, record));
            }
            if let Some(forward) = &forward {
                // A closed display only means nobody watches any more.
                let _ = forward.send(event);
            }
        }
        if !files.is_empty()
            && let Err(error) = place(dir, files, &mut placed)
        {
            tracing::debug!(%error, "step files are left for the end of the run");
            writing = false;
        }
    }
    placed
}

/// A step's file: its name and content, as the end of the run would write it
/// (a nested step's record under its qualified id, as in the run's record).
fn step_file(step: &str, record: &crate::engine::StepRecord) -> (String, String) {
    let text = if record.id == step {
        pretty(record)
    } else {
        let mut qualified = record.clone();
        qualified.id = step.to_string();
        pretty(&qualified)
    };
    (step_file_name(step), text)
}

/// Put `files` in place: staged (their writeback started), renamed; the end
/// of the run syncs them. A file sent twice (a step finished again by its
/// handler) takes its last content.
fn place(
    dir: &Path,
    files: Vec<(String, String)>,
    placed: &mut Placed,
) -> Result<(), std::io::Error> {
    let mut staged: Vec<(Staged, String, String)> = Vec::new();
    let mut result = Ok(());
    for (name, text) in files {
        let path: PathBuf = dir.join(&name);
        if let Err(error) = super::refuse_link(&path) {
            result = Err(std::io::Error::other(error.to_string()));
            break;
        }
        match stage_with(&path, |file| {
            std::io::Write::write_all(file, text.as_bytes())
        }) {
            Ok(file) => staged.push((file, name, sha256_hex(text.as_bytes()))),
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    for (file, name, hash) in staged {
        if result.is_ok() {
            result = std::fs::rename(&file.temporary, &file.path);
            if result.is_ok() {
                placed.insert(name, hash);
                continue;
            }
        }
        let _ = std::fs::remove_file(&file.temporary);
    }
    result
}
