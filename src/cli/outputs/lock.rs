//! One writer per output directory: a run holds an exclusive `flock` on its
//! `--out` directory from before its first step until its results are in
//! place. Two runs writing into one directory would mix their files; with
//! the lock the second is refused before it starts. The kernel drops the
//! lock when the process dies (even by `kill -9`), so a lock is never stale,
//! and the holder knows that any temporary of ours it finds was left by a
//! process that died: those are removed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::printer::BadInput;

/// Held while a run may write into its output directory.
#[derive(Debug)]
pub struct OutLock {
    _dir: File,
}

/// Create `dir` unless it exists, lock it (refused at once while another
/// process holds it), and remove the temporaries a killed run left there.
/// Where the filesystem has no locks: a warning, no lock, nothing removed.
pub fn lock(dir: &Path) -> anyhow::Result<OutLock> {
    if std::fs::metadata(dir).is_ok_and(|meta| !meta.is_dir()) {
        return Err(super::not_a_directory(dir));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let opened = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    // SAFETY: a plain syscall on a descriptor we own.
    if unsafe { libc::flock(opened.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(BadInput::new(format!(
                "another pallet process is writing results into {}",
                dir.display()
            ))
            .hint("wait until it ends, or pass another --out")
            .into());
        }
        // A filesystem without locks (some network ones) must not stop the
        // run: it goes on unlocked, as before locks, and removes nothing.
        tracing::warn!(path = %dir.display(), %error, "cannot lock the output directory; writing into it unlocked");
        return Ok(OutLock { _dir: opened });
    }
    // `dir` (opened above, so a directory) may be a link the user gave as
    // --out; `steps` is ours and never followed.
    remove_left_temporaries(dir);
    let steps = dir.join("steps");
    if std::fs::symlink_metadata(&steps).is_ok_and(|meta| meta.is_dir()) {
        remove_left_temporaries(&steps);
    }
    Ok(OutLock { _dir: opened })
}

/// Remove the regular files in `dir` named as our temporaries are
/// (`.NAME.<32 hex digits>.tmp`; the type from the listing, so a link of
/// that name is not followed, and unlink never follows one).
fn remove_left_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_ours = name.to_str().is_some_and(super::is_temporary_name);
        if is_ours && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            tracing::debug!(path = %entry.path().display(), "removed a temporary a killed run left");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_with_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("app");
        let held = lock(&out).unwrap();
        let error = format!("{:#}", lock(&out).unwrap_err());
        assert!(
            error.contains("another pallet process is writing results into")
                && error.contains("app"),
            "{error}"
        );
        let refused = lock(&out).unwrap_err();
        let bad = refused.downcast_ref::<BadInput>().expect("a BadInput");
        assert_eq!(
            bad.hint.as_deref(),
            Some("wait until it ends, or pass another --out")
        );
        drop(held);
        lock(&out).expect("free again once the holder is gone");
    }

    #[test]
    fn the_lock_removes_only_temporaries_a_run_left() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("app");
        std::fs::create_dir_all(out.join("steps")).unwrap();
        let id = "0123456789abcdef0123456789abcdef";
        let left = [
            out.join(format!(".run.json.{id}.tmp")),
            out.join("steps").join(format!(".build.json.{id}.tmp")),
        ];
        let kept = [
            out.join(".notes.tmp"),
            out.join(format!(".x.{}.tmp", &id[..31])),
            out.join(format!("run.json.{id}.tmp")),
            out.join("steps").join("build.json"),
        ];
        for path in left.iter().chain(&kept) {
            std::fs::write(path, "x").unwrap();
        }
        // A link named as a temporary is not ours to follow or remove.
        let victim = root.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = out.join(format!(".plan.json.{id}.tmp"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();

        let _held = lock(&out).unwrap();
        for path in &left {
            assert!(!path.exists(), "{} left", path.display());
        }
        for path in &kept {
            assert!(path.exists(), "{} removed", path.display());
        }
        assert!(link.symlink_metadata().is_ok());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn an_out_given_as_a_link_is_cleaned_through_it_but_a_steps_link_is_not() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        let out = root.path().join("app");
        std::os::unix::fs::symlink(&real, &out).unwrap();
        std::os::unix::fs::symlink(&elsewhere, real.join("steps")).unwrap();
        let name = ".run.json.0123456789abcdef0123456789abcdef.tmp";
        std::fs::write(real.join(name), "x").unwrap();
        std::fs::write(elsewhere.join(name), "x").unwrap();

        let _held = lock(&out).unwrap();
        assert!(!real.join(name).exists());
        assert!(
            elsewhere.join(name).exists(),
            "cleaned through a steps link"
        );
    }
}
