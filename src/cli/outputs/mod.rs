//! The results of a run on disk, as the original project wrote them to `app/`.
//!
//! The output directory may hold things pallet did not put there, so writing
//! never follows a symbolic link, each file is replaced atomically (a failed
//! write leaves the old file), and only files pallet wrote itself and that
//! are unchanged since are removed before the next run.

mod live;
mod lock;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use live::Live;
use live::Ready;
pub use lock::{OutLock, lock};

use super::printer::BadInput;
use crate::engine::{RunRecord, StepRecord, StepStatus};

/// Lists what the last run wrote, with each file's SHA-256 (the format of
/// `sha256sum`), so the next run removes exactly those files, and only while
/// they are as pallet left them.
const MANIFEST: &str = ".pallet-files";

/// Names the generated code file may not take: they hold the run's own record.
const RESERVED: &[&str] = &[
    "run.json",
    "metadata.json",
    "plan.json",
    "review.json",
    "steps",
    MANIFEST,
];

const LINK_HINT: &str =
    "remove the symbolic link or pass another --out; pallet writes results only into real files";

/// Writes the run's files into `dir` and returns their names. `live` has
/// written step files beside their places while the run went on: those
/// still as the final record has them are renamed into place with the
/// others, the rest written again. Only then are the previous run's files
/// that this run did not write again removed (the unchanged ones).
pub fn write(
    dir: &Path,
    record: &RunRecord,
    live: Option<Live>,
    _held: &OutLock,
) -> anyhow::Result<Vec<String>> {
    // Waited for first, so no step file is written after this.
    let mut ready = live.map(Live::ready).unwrap_or_default();
    let mut written = Written::default();
    let staged = prepare(dir).and_then(|()| stage_all(dir, record, &mut ready, &mut written));
    // Superseded while the run went on, or of steps the record does not have.
    live::discard_all(ready);
    let previous = read_no_follow(&dir.join(MANIFEST)).ok();
    let staged = staged.and_then(|()| {
        let path = dir.join(MANIFEST);
        refuse_link(&path)?;
        let manifest = std::mem::take(&mut written.manifest);
        written.stage(&path, manifest.as_bytes())
    });
    if let Err(error) = staged {
        written.discard();
        return Err(error);
    }
    let names = written.commit()?;
    let kept: HashSet<&str> = names.iter().map(String::as_str).collect();
    if let Some(previous) = previous {
        remove_previous(dir, &String::from_utf8_lossy(&previous), &kept)?;
    }
    Ok(names)
}

/// The output directory and its `steps/`, created unless they are there
/// (as real directories: a link in place of `steps` is refused).
fn prepare(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    create_real_dir(&dir.join("steps"))
}

/// Every result file but the manifest, staged in `written` (a step file
/// `ready` with the same content is taken over from there).
fn stage_all(
    dir: &Path,
    record: &RunRecord,
    ready: &mut Ready,
    written: &mut Written,
) -> anyhow::Result<()> {
    written.file(dir, "run.json", &pretty(record))?;
    written.file(dir, "metadata.json", &pretty(&metadata(record)))?;
    for step in &record.steps {
        let name = step_file_name(&step.id);
        let text = pretty(step);
        match ready.remove(&name) {
            Some((staged, hash)) if hash == sha256_hex(text.as_bytes()) => {
                written.adopt(staged, &name, &hash);
            }
            other => {
                if let Some((staged, _)) = other {
                    staged.discard();
                }
                written.file(dir, &name, &text)?;
            }
        }
    }
    if let Some(plan) = result_of_skill(record, "create_plan") {
        written.file(dir, "plan.json", &pretty(plan))?;
    }
    if let Some(review) = result_of_skill(record, "review_code") {
        written.file(dir, "review.json", &pretty(review))?;
    }
    if let Some(build) = result_of_skill(record, "generate_code")
        && let Some(code) = build["code"].as_str()
    {
        written.file(dir, &code_file_name(build), code)?;
    }
    Ok(())
}

/// The files staged so far (each in a temporary beside its place) and the
/// manifest lines that record them. All are written first, then renamed
/// into place, so a failure before the renames leaves every old file as it
/// was.
///
/// Nothing is fsynced: the run store keeps the run's record (`pallet runs
/// show ID --json`), and after a crash of pallet these files are whole, old
/// or new. After a power loss they may be missing, stale or empty; a sync of
/// every file cost about 10 of a 100-step run's 42 ms on a journaled ext4
/// disk (BENCHMARKS.md).
#[derive(Default)]
struct Written {
    names: Vec<String>,
    manifest: String,
    staged: Vec<Staged>,
}

/// A file written to `temporary` (and closed), to be renamed over `path`.
struct Staged {
    temporary: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Remove the temporary: it is not going in.
    fn discard(self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

impl Written {
    fn file(&mut self, dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
        let path = dir.join(name);
        refuse_link(&path)?;
        self.stage(&path, text.as_bytes())?;
        self.list(name, &sha256_hex(text.as_bytes()));
        Ok(())
    }

    /// Record `name` (in place with content of SHA-256 `hash`) in the manifest.
    fn list(&mut self, name: &str, hash: &str) {
        self.manifest.push_str(&format!("{hash}  {name}\n"));
        self.names.push(name.to_string());
    }

    /// Take over `staged`, written while the run went on as `name` with
    /// content of SHA-256 `hash`.
    fn adopt(&mut self, staged: Staged, name: &str, hash: &str) {
        self.staged.push(staged);
        self.list(name, hash);
    }

    fn stage(&mut self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let staged = stage_with(path, |file| file.write_all(bytes))
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.staged.push(staged);
        Ok(())
    }

    /// Rename each staged file into place (in staging order: the manifest
    /// last); the names written.
    fn commit(mut self) -> anyhow::Result<Vec<String>> {
        for index in 0..self.staged.len() {
            let file = &self.staged[index];
            if let Err(error) = std::fs::rename(&file.temporary, &file.path) {
                let path = file.path.clone();
                // The renamed ones are in place; the others are discarded.
                self.staged.drain(..index);
                self.discard();
                return Err(error).with_context(|| format!("cannot write {}", path.display()));
            }
        }
        self.staged.clear();
        Ok(std::mem::take(&mut self.names))
    }

    /// Remove the temporaries not renamed.
    fn discard(&mut self) {
        self.staged.drain(..).for_each(Staged::discard);
    }
}

/// Removes the previous run's files (its `manifest`) that this run did not
/// write again (`kept`): only names this module could have written, only
/// regular files (never through a link), only unchanged ones.
fn remove_previous(dir: &Path, manifest: &str, kept: &HashSet<&str>) -> anyhow::Result<()> {
    for line in manifest.lines() {
        // A manifest without hashes (an older pallet's) proves nothing: keep those files.
        let Some((hash, name)) = line.split_once("  ") else {
            continue;
        };
        if kept.contains(name) {
            continue;
        }
        if !is_own_file_name(name) || !parent_is_real_dir(dir, name) {
            tracing::debug!(
                name,
                "the previous run's manifest names a file pallet does not remove"
            );
            continue;
        }
        let path = dir.join(name);
        if !is_unchanged(&path, hash) {
            if path.symlink_metadata().is_ok() {
                tracing::warn!(path = %path.display(), "kept the previous run's file: it changed since pallet wrote it");
            }
            continue;
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove the previous run's {}", path.display()))?;
    }
    Ok(())
}

/// `path` is a regular file (not a link) whose content has SHA-256 `hash`.
fn is_unchanged(path: &Path, hash: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file())
        && read_no_follow(path).is_ok_and(|bytes| sha256_hex(&bytes) == hash)
}

/// A name this module could have written: `NAME` or `steps/NAME`, nothing that climbs out.
fn is_own_file_name(name: &str) -> bool {
    let file = name.strip_prefix("steps/").unwrap_or(name);
    !file.is_empty() && file_safe(file) == file && !file.starts_with('.')
}

/// `steps/NAME` only while `steps` is a directory, not a link to one elsewhere.
fn parent_is_real_dir(dir: &Path, name: &str) -> bool {
    match name.split_once('/') {
        Some((parent, _)) => {
            std::fs::symlink_metadata(dir.join(parent)).is_ok_and(|meta| meta.is_dir())
        }
        None => true,
    }
}

/// Creates `path` as a directory unless it is one; a link (even to a
/// directory) or a file in its place is an error.
fn create_real_dir(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(link_error(path)),
        Ok(_) => Err(not_a_directory(path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(path).with_context(|| format!("cannot create {}", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The clear error for a file where the results' directory goes.
fn not_a_directory(path: &Path) -> anyhow::Error {
    BadInput::new(format!(
        "cannot write results into {}: it is not a directory",
        path.display()
    ))
    .hint("remove it or pass another --out")
    .into()
}

/// The clear error for a planted link; the atomic rename would replace the
/// link rather than follow it, but a link there means someone meant it.
fn refuse_link(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(link_error(path)),
        _ => Ok(()),
    }
}

fn link_error(path: &Path) -> anyhow::Error {
    BadInput::new(format!(
        "refusing to write {}: it is a symbolic link",
        path.display()
    ))
    .hint(LINK_HINT)
    .into()
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same
/// directory, written, then renamed over `path`.
#[cfg(test)]
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file_with(path, |file| file.write_all(bytes))
}

/// [`replace_file`] with the writing passed in, so tests can make it fail.
#[cfg(test)]
fn replace_file_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let staged = stage_with(path, fill)?;
    let result = std::fs::rename(&staged.temporary, path);
    if result.is_err() {
        let _ = std::fs::remove_file(&staged.temporary);
    }
    result
}

/// `path`'s new content, written by `fill` into a new temporary file beside
/// it (never through a link); the temporary is removed when `fill` fails.
fn stage_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<Staged> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(
        ".{name}.{}{TEMPORARY_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    if let Err(error) = fill(&mut file) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    drop(file);
    Ok(Staged {
        temporary,
        path: path.to_path_buf(),
    })
}

/// What ends a temporary's name: `.NAME.<32 hex digits>.tmp`.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// A name [`stage_with`] gives a temporary.
fn is_temporary_name(name: &str) -> bool {
    let Some((file, id)) = name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(TEMPORARY_SUFFIX))
        .and_then(|rest| rest.rsplit_once('.'))
    else {
        return false;
    };
    !file.is_empty()
        && id.len() == 32
        && id
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads a file without following a link at its last component.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn metadata(record: &RunRecord) -> Value {
    let review = result_of_skill(record, "review_code");
    let timings: serde_json::Map<String, Value> = record
        .steps
        .iter()
        .map(|step| (step.id.clone(), json!(step.duration_ms)))
        .collect();
    json!({
        "run_id": record.run_id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "workflow_source": record.workflow_source,
        "digest": digest(&record.workflow_source),
        "status": record.status,
        "input": record.input,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_ms": record.duration_ms,
        "step_duration_ms": timings,
        "approved": review.and_then(|review| review.get("approved")).cloned(),
        "quality_score": review.and_then(|review| review.get("quality_score")).cloned(),
    })
}

/// The digest a run used: from a registry origin, "built-in", else null.
fn digest(workflow_source: &str) -> Value {
    if workflow_source.starts_with(crate::builtin::BUILTIN_ORIGIN) {
        return json!("built-in");
    }
    crate::registry::source::digest_of_origin(workflow_source)
        .map_or(Value::Null, |digest| json!(digest))
}

/// The result of the last completed step calling `skill`: its outputs, unwrapped
/// from `{NAME: result}` when the step stored it under an `outputs` name.
/// Child runs (`execute_workflow`) count, so the smart router's pipeline is written too.
fn result_of_skill<'a>(record: &'a RunRecord, skill: &str) -> Option<&'a Value> {
    let step = last_completed(record, skill)?;
    let outputs = step.outputs.as_ref()?;
    match outputs.as_object() {
        Some(fields) if fields.len() == 1 => fields.values().next(),
        _ => Some(outputs),
    }
}

fn last_completed<'a>(record: &'a RunRecord, skill: &str) -> Option<&'a StepRecord> {
    record.steps.iter().rev().find_map(|step| {
        let own = step.status == StepStatus::Completed && step.skill.as_deref() == Some(skill);
        if own {
            return Some(step);
        }
        step.child
            .as_deref()
            .and_then(|child| last_completed(child, skill))
    })
}

/// The agent's file name when it is a plain name, else `main.<extension>`.
fn code_file_name(build: &Value) -> String {
    if let Some(name) = build["filename"].as_str()
        && !name.is_empty()
        && file_safe(name) == name
        && !name.starts_with('.')
        && !RESERVED.contains(&name)
    {
        return name.to_string();
    }
    let extension = match build["language"].as_str().unwrap_or("python") {
        "javascript" | "js" => "js",
        "typescript" | "ts" => "ts",
        "rust" => "rs",
        "go" => "go",
        "java" => "java",
        _ => "py",
    };
    format!("main.{extension}")
}

/// A step's file, relative to the output directory.
fn step_file_name(id: &str) -> String {
    format!("steps/{}.json", step_file_stem(id))
}

/// A step's file name: qualified ids (`each[0]/scan`, `build/on_failure/note`)
/// become `each.0.scan`, `build.on_failure.note`. Step ids have no `.`, so no
/// two steps share a file.
fn step_file_stem(id: &str) -> String {
    let dotted: String = id
        .chars()
        .filter(|&c| c != ']')
        .map(|c| if c == '[' || c == '/' { '.' } else { c })
        .collect();
    file_safe(&dotted)
}

/// Keeps names inside the output directory.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, skill: &str, outputs: Value) -> StepRecord {
        StepRecord {
            id: id.into(),
            skill: Some(skill.into()),
            status: StepStatus::Completed,
            inputs: None,
            outputs: Some(outputs),
            error: None,
            attempts: 1,
            agent: None,
            child: None,
            status_messages: Vec::new(),
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 0.0,
        }
    }

    /// A run with one step `a` whose generated code goes to `main.py`.
    fn record() -> RunRecord {
        RunRecord {
            continued_failures: Vec::new(),
            run_id: "r".into(),
            workflow_id: "w".into(),
            workflow_version: "1.0.0".into(),
            workflow_source: "w.yaml".into(),
            input: json!({}),
            status: crate::engine::RunStatus::Completed,
            steps: vec![step(
                "a",
                "generate_code",
                json!({"code": "print(1)\n", "language": "python"}),
            )],
            output: None,
            error: None,
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 0.0,
        }
    }

    /// An output directory and, beside it, a victim pallet must never touch.
    struct Places {
        _root: tempfile::TempDir,
        out: std::path::PathBuf,
        victim_file: std::path::PathBuf,
        victim_dir: std::path::PathBuf,
    }

    fn places() -> Places {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let victim_dir = root.path().join("victim-dir");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&victim_dir).unwrap();
        std::fs::write(victim_dir.join("a.json"), "precious\n").unwrap();
        let victim_file = root.path().join("victim.txt");
        std::fs::write(&victim_file, "precious\n").unwrap();
        Places {
            _root: root,
            out,
            victim_file,
            victim_dir,
        }
    }

    #[test]
    fn a_planted_file_link_is_refused_and_its_target_unchanged() {
        let places = places();
        std::os::unix::fs::symlink(&places.victim_file, places.out.join("main.py")).unwrap();
        let error = write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        assert!(
            super::super::printer::render_error(&error).contains("hint: remove the symbolic link")
        );
        assert_eq!(
            std::fs::read_to_string(&places.victim_file).unwrap(),
            "precious\n"
        );
    }

    #[test]
    fn a_planted_directory_link_is_refused_and_nothing_is_written_through_it() {
        let places = places();
        std::os::unix::fs::symlink(&places.victim_dir, places.out.join("steps")).unwrap();
        let error = write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        let entries: Vec<_> = std::fs::read_dir(&places.victim_dir).unwrap().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            std::fs::read_to_string(places.victim_dir.join("a.json")).unwrap(),
            "precious\n"
        );
    }

    #[test]
    fn a_hostile_manifest_removes_nothing_pallet_did_not_write() {
        let places = places();
        write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap();
        // The user edits a file pallet wrote; an attacker lists files outside
        // the directory, links and the user's own files, with their true hashes.
        std::fs::write(places.out.join("main.py"), "mine now\n").unwrap();
        std::os::unix::fs::symlink(&places.victim_file, places.out.join("link.json")).unwrap();
        std::fs::write(places.out.join("notes.txt"), "the user's\n").unwrap();
        let hash = sha256_hex(b"precious\n");
        let mut manifest = std::fs::read_to_string(places.out.join(MANIFEST)).unwrap();
        for name in [
            "../victim.txt".to_string(),
            places.victim_file.display().to_string(),
            "link.json".to_string(),
            "../victim-dir/a.json".to_string(),
        ] {
            manifest.push_str(&format!("{hash}  {name}\n"));
        }
        manifest.push_str("notes.txt\n");
        std::fs::write(places.out.join(MANIFEST), manifest).unwrap();

        let mut next = record();
        next.steps = vec![step("b", "create_plan", json!({"plan": 1}))];
        write(&places.out, &next, None, &lock(&places.out).unwrap()).unwrap();

        assert_eq!(
            std::fs::read_to_string(&places.victim_file).unwrap(),
            "precious\n"
        );
        assert!(places.victim_dir.join("a.json").exists());
        assert!(places.out.join("link.json").symlink_metadata().is_ok());
        assert_eq!(
            std::fs::read_to_string(places.out.join("main.py")).unwrap(),
            "mine now\n"
        );
        assert!(places.out.join("notes.txt").exists());
        // What pallet wrote and nobody changed is gone.
        assert!(!places.out.join("steps/a.json").exists());
        assert!(places.out.join("steps/b.json").exists());
    }

    #[test]
    fn a_manifest_entry_under_a_linked_steps_directory_is_not_removed() {
        let places = places();
        write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap();
        std::fs::remove_dir_all(places.out.join("steps")).unwrap();
        std::os::unix::fs::symlink(&places.victim_dir, places.out.join("steps")).unwrap();
        let manifest = format!("{}  steps/a.json\n", sha256_hex(b"precious\n"));
        std::fs::write(places.out.join(MANIFEST), manifest).unwrap();
        assert!(write(&places.out, &record(), None, &lock(&places.out).unwrap()).is_err());
        assert!(places.victim_dir.join("a.json").exists());
    }

    #[test]
    fn a_run_whose_files_fail_before_the_renames_keeps_every_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("run.json");
        let second = dir.path().join("metadata.json");
        replace_file(&first, b"old run\n").unwrap();
        replace_file(&second, b"old metadata\n").unwrap();
        let mut written = Written::default();
        written.stage(&first, b"new run\n").unwrap();
        written.stage(&second, b"new metadata\n").unwrap();
        // What `write` does when a later file cannot be staged.
        written.discard();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "old run\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "old metadata\n");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["metadata.json", "run.json"]);
        let mut written = Written::default();
        written.stage(&first, b"new run\n").unwrap();
        written.stage(&second, b"new metadata\n").unwrap();
        written.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "new run\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "new metadata\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    fn finished(id: &str, record: &StepRecord) -> crate::engine::Event {
        crate::engine::Event::StepFinished {
            step: id.into(),
            record: Box::new(record.clone()),
        }
    }

    /// The files of `dir` and `dir/steps`, sorted (temporaries included).
    fn files(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for (prefix, dir) in [("", dir.to_path_buf()), ("steps/", dir.join("steps"))] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_file() {
                    names.push(format!("{prefix}{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        names.sort();
        names
    }

    #[test]
    fn a_step_file_is_written_while_the_run_goes_on_and_put_in_place_at_its_end() {
        let places = places();
        write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap();
        let old_a = std::fs::read_to_string(places.out.join("steps/a.json")).unwrap();
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (shown, mut progress) = tokio::sync::mpsc::unbounded_channel();
        let held = lock(&places.out).unwrap();
        let live = Live::start(&places.out, receiver, Some(shown)).unwrap();
        let mut record = record();
        record.steps[0].outputs = Some(json!({"code": "print(2)\n", "language": "python"}));
        record
            .steps
            .push(step("b", "create_plan", json!({"plan": 2})));
        events.send(finished("a", &record.steps[0])).unwrap();
        // Written beside its place while the run goes on; the old file stays.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !hidden(&places.out.join("steps"))
            .iter()
            .any(|name| name.starts_with(".a.json."))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "a's file was never written"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            std::fs::read_to_string(places.out.join("steps/a.json")).unwrap(),
            old_a
        );
        // An earlier content of b (the final record has another), and a step
        // the final record does not have.
        events
            .send(finished("b", &step("b", "create_plan", json!({"plan": 1}))))
            .unwrap();
        events
            .send(finished("gone", &step("gone", "x", json!(1))))
            .unwrap();
        drop(events);
        let names = write(&places.out, &record, Some(live), &held).unwrap();
        assert!(names.contains(&"steps/a.json".to_string()), "{names:?}");
        for step in &record.steps {
            let text = std::fs::read_to_string(places.out.join(step_file_name(&step.id))).unwrap();
            assert_eq!(text, pretty(step));
        }
        assert_eq!(
            files(&places.out),
            [
                ".pallet-files",
                "main.py",
                "metadata.json",
                "plan.json",
                "run.json",
                "steps/a.json",
                "steps/b.json"
            ]
        );
        assert!(
            hidden(&places.out.join("steps")).is_empty(),
            "no temporary is left"
        );
        let manifest = std::fs::read_to_string(places.out.join(MANIFEST)).unwrap();
        assert!(
            manifest.contains("  steps/a.json\n") && !manifest.contains("gone"),
            "{manifest}"
        );
        // Every event reached the progress display, in order.
        let mut forwarded = Vec::new();
        while let Ok(crate::engine::Event::StepFinished { step, .. }) = progress.try_recv() {
            forwarded.push(step);
        }
        assert_eq!(forwarded, ["a", "b", "gone"]);
    }

    #[test]
    fn a_run_that_writes_no_results_leaves_the_directory_as_it_was() {
        let places = places();
        write(&places.out, &record(), None, &lock(&places.out).unwrap()).unwrap();
        let contents = |out: &Path| -> Vec<(String, String)> {
            files(out)
                .into_iter()
                .map(|name| {
                    let text = std::fs::read_to_string(out.join(&name)).unwrap();
                    (name, text)
                })
                .collect()
        };
        let before = contents(&places.out);
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let _held = lock(&places.out).unwrap();
        let live = Live::start(&places.out, receiver, None).unwrap();
        // A step of the old run's name, and a new one.
        let mut changed = record().steps[0].clone();
        changed.outputs = Some(json!({"changed": true}));
        events.send(finished("a", &changed)).unwrap();
        events
            .send(finished("new", &step("new", "x", json!(1))))
            .unwrap();
        drop(events);
        live.discard();
        assert_eq!(contents(&places.out), before);
        assert!(hidden(&places.out.join("steps")).is_empty());
    }

    /// The names starting with a dot in `dir` (temporaries).
    fn hidden(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect()
    }

    #[test]
    fn live_step_files_are_not_written_through_a_planted_link() {
        let places = places();
        std::os::unix::fs::symlink(&places.victim_dir, places.out.join("steps")).unwrap();
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let held = lock(&places.out).unwrap();
        let live = Live::start(&places.out, receiver, None).unwrap();
        events
            .send(finished("a", &step("a", "x", json!(1))))
            .unwrap();
        drop(events);
        let error = write(&places.out, &record(), Some(live), &held).unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        let entries: Vec<_> = std::fs::read_dir(&places.victim_dir).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        replace_file(&path, b"old\n").unwrap();
        let failed = replace_file_with(&path, |file| {
            file.write_all(b"{\"par")?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "disk full",
            ))
        });
        assert_eq!(failed.unwrap_err().kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.json"]);
    }

    #[test]
    fn qualified_step_ids_get_files_of_their_own() {
        let ids = [
            "each[0]/scan",
            "each_0__scan",
            "each_0_/scan",
            "r[12]/b/on_failure/n",
        ];
        let stems: Vec<String> = ids.iter().map(|id| step_file_stem(id)).collect();
        assert_eq!(
            stems,
            [
                "each.0.scan",
                "each_0__scan",
                "each_0_.scan",
                "r.12.b.on_failure.n"
            ]
        );
        assert!(
            stems
                .iter()
                .all(|stem| is_own_file_name(&format!("steps/{stem}.json")))
        );
    }

    #[test]
    fn code_file_names_stay_inside_and_never_replace_the_record() {
        let cases = [
            (json!({"filename": "factorial.py"}), "factorial.py"),
            (
                json!({"filename": "../escape.py", "language": "python"}),
                "main.py",
            ),
            (
                json!({"filename": "run.json", "language": "rust"}),
                "main.rs",
            ),
            (
                json!({"filename": "steps", "language": "javascript"}),
                "main.js",
            ),
            (json!({"filename": ".bashrc"}), "main.py"),
            (json!({"language": "go"}), "main.go"),
        ];
        for (build, expected) in cases {
            assert_eq!(code_file_name(&build), expected, "{build}");
        }
    }

    #[test]
    fn manifest_names_that_climb_out_are_ignored() {
        assert!(is_own_file_name("plan.json"));
        assert!(is_own_file_name("steps/build.json"));
        for name in [
            "../x",
            "steps/../../x",
            "/etc/passwd",
            "",
            ".pallet-files",
            "a/b",
        ] {
            assert!(!is_own_file_name(name), "{name}");
        }
    }
}
