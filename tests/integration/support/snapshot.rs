//! Snapshots of what users see (insta): one command's transcript (its
//! arguments, exit code, stdout and stderr) with what changes from run to run
//! or machine to machine replaced by placeholders: ids, digests, ports, times,
//! durations, PIDs and the test's temp directory.

use std::process::Output;

use super::TestContext;

/// `(pattern, replacement)` pairs, applied in order.
const FILTERS: &[(&str, &str)] = &[
    (
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    ),
    (r"sha256:[0-9a-f]{7,64}", "sha256:[DIGEST]"),
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        "[TIME]",
    ),
    (r"(127\.0\.0\.1|localhost|\[::1\]):\d+", "$1:[PORT]"),
    (r"\bpid \d+", "pid [PID]"),
    (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
    // Seconds per run state (`time_in_state_seconds`).
    (
        r#""(pending|in_progress|waiting_approval|completed|failed|cancelled)": \d+(\.\d+)?"#,
        r#""$1": [DURATION]"#,
    ),
    // JSON numbers that measure time.
    (
        r#""(\w*duration\w*|\w*_ms|\w*_seconds)": \d+(\.\d+)?"#,
        r#""$1": [DURATION]"#,
    ),
    // Durations in text: `255 ms`, `0.3 s`, `1.2s`, `3m 2s`.
    (r"\b\d+(\.\d+)? ?(ms|µs|s|m|h)\b", "[DURATION]"),
];

/// Insta settings with the filters and the context's temp directory as `[TEMP]`.
pub fn settings(context: &TestContext) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let temp = context.path().to_str().unwrap();
    settings.add_filter(&regex::escape(temp), "[TEMP]");
    if let Ok(canonical) = context.path().canonicalize() {
        settings.add_filter(&regex::escape(canonical.to_str().unwrap()), "[TEMP]");
    }
    settings.add_filter(&regex::escape(env!("CARGO_MANIFEST_DIR")), "[REPOSITORY]");
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// `$ pallet ARGS`, the exit code, then stdout and stderr as the user sees them.
pub fn transcript(arguments: &[&str], output: &Output) -> String {
    let mut text = format!("$ pallet {}\n", arguments.join(" "));
    match output.status.code() {
        Some(code) => text.push_str(&format!("exit: {code}\n")),
        None => text.push_str(&format!("exit: {:?}\n", output.status)),
    }
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        if bytes.is_empty() {
            continue;
        }
        text.push_str(&format!("--- {name}\n"));
        text.push_str(&String::from_utf8_lossy(bytes));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}
