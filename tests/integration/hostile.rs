//! Hostile workflow files against a real `pallet validate` process: deep
//! nesting, alias bombs, NUL bytes, many problems. Each must end quickly with
//! a located diagnostic (exit 2), never a crash or a runaway allocation.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestContext;
use crate::support::pallet::Spawned;

const HEAD: &str = "metadata: {id: hostile, name: Hostile, version: 1.0.0}\nsteps:\n";

/// Waits for `process` at most `limit`, else fails (its guard then kills it
/// and its group, so a runaway one never outlives the test).
fn wait(mut process: Spawned, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    while process.try_wait().expect("process state").is_none() {
        assert!(
            started.elapsed() <= limit,
            "pallet took more than {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (process.wait_with_output(), started.elapsed())
}

/// `pallet validate FILE` in `context`, with every home and XDG directory inside it.
fn validate(context: &TestContext, file: &str) -> Spawned {
    Spawned::spawn(
        context
            .pallet()
            .args(["validate", file])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// Writes `text` as `name` in a fresh directory and validates it there.
fn validate_text(name: &str, text: &[u8], limit: Duration) -> (i32, String, Duration) {
    let context = TestContext::new();
    context.write(name, text);
    let (output, took) = wait(validate(&context, name), limit);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or_else(|| {
        panic!(
            "pallet was killed by a signal ({:?}): {stderr}",
            output.status
        )
    });
    (code, stderr, took)
}

fn deep_input(levels: usize) -> String {
    format!(
        "{HEAD}  - id: a\n    skill: s\n    inputs:\n      deep:\n        {}x\n",
        "- ".repeat(levels)
    )
}

#[test]
fn thirty_thousand_nested_lists_are_a_located_error() {
    let (code, stderr, _) = validate_text(
        "deep.yaml",
        deep_input(30_000).as_bytes(),
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("deep.yaml:7:129: YAML nesting is deeper than 64 levels (the limit)"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
}

#[test]
fn three_thousand_nested_containers_are_a_located_error() {
    let mut text = HEAD.to_string();
    for index in 0..3_000 {
        text.push_str(&format!(
            "- {{id: c{index}, step_type: parallel, branches: {{steps: ["
        ));
    }
    text.push_str("{id: leaf, skill: s}");
    text.push_str(&"]}}".repeat(3_000));
    text.push('\n');
    let (code, stderr, _) =
        validate_text("containers.yaml", text.as_bytes(), Duration::from_secs(30));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("containers.yaml:3:"), "{stderr}");
}

#[test]
fn an_alias_bomb_of_bytes_fails_fast() {
    let big = "x".repeat(900 * 1024);
    let text = format!(
        "{HEAD}  - id: a\n    skill: s\n    inputs:\n      big: &big {big}\n      list: [{}]\n",
        vec!["*big"; 20_000].join(", ")
    );
    let (code, stderr, took) =
        validate_text("aliases.yaml", text.as_bytes(), Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("aliases.yaml:7:") && stderr.contains("YAML aliases expand to more than"),
        "{stderr}"
    );
    eprintln!("alias bomb refused in {took:?}");
}

#[test]
fn a_nul_byte_is_refused_where_it_is() {
    let mut text = format!("{HEAD}  - {{id: a, skill: s}}\n").into_bytes();
    text.extend_from_slice(b"\0garbage: [\n");
    let (code, stderr, _) = validate_text("nul.yaml", &text, Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("nul.yaml:4:1: the file holds the control character U+0000"),
        "{stderr}"
    );
}

#[test]
fn an_oversized_file_is_refused_without_reading_it_all() {
    let text = format!("{HEAD}  - {{id: a, skill: s}}\n# {}\n", "x".repeat(2 << 20));
    let (code, stderr, _) = validate_text("large.yaml", text.as_bytes(), Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("large.yaml:1:1: the workflow is larger than 1 MiB (the limit)"),
        "{stderr}"
    );
    assert!(stderr.contains("PALLET_MAX_WORKFLOW_BYTES"), "{stderr}");
}
