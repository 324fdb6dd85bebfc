//! Loading workflows: the shipped examples load, every invalid fixture fails with
//! diagnostics naming file:line:column, the JSON pointer and a hint (pinned by snapshots).

use std::path::{Path, PathBuf};

use pallet::workflow::{LoadError, load_str};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The YAML files of a directory relative to the crate root, sorted, as relative paths.
fn yaml_files(relative_dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(manifest_dir().join(relative_dir))
        .expect("fixture directory exists")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{relative_dir}/{name}"))
        .collect();
    files.sort();
    files
}

/// Loads with a relative origin so diagnostics show no machine path.
fn load_relative(relative: &str) -> Result<pallet::workflow::LoadedWorkflow, LoadError> {
    let text = std::fs::read_to_string(manifest_dir().join(relative)).expect("fixture readable");
    load_str(relative, &text)
}

#[test]
fn shipped_examples_load() {
    let files = yaml_files("workflows");
    assert!(files.len() >= 3, "examples missing: {files:?}");
    for file in files {
        if let Err(error) = load_relative(&file) {
            let LoadError::Invalid { diagnostics, .. } = &error else {
                panic!("{file}: {error}")
            };
            let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{file} does not load:\n{}", rendered.join("\n"));
        }
    }
}

#[test]
fn smart_router_warns_that_the_switch_skill_is_ignored() {
    let loaded = load_relative("workflows/smart-router.yaml").expect("smart-router loads");
    let rendered: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 1, "{rendered:?}");
    assert!(
        rendered[0].starts_with(
            "workflows/smart-router.yaml:22:5: `skill` is ignored on switch step `route`"
        ),
        "{rendered:?}"
    );
}

#[test]
fn valid_fixtures_load() {
    for file in yaml_files("tests/fixtures/valid") {
        if let Err(error) = load_relative(&file) {
            let LoadError::Invalid { diagnostics, .. } = &error else {
                panic!("{file}: {error}")
            };
            let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{file} does not load:\n{}", rendered.join("\n"));
        }
    }
}

#[test]
fn invalid_fixtures_fail_with_located_diagnostics() {
    let files = yaml_files("tests/fixtures/invalid");
    assert!(!files.is_empty());
    for file in files {
        let error = match load_relative(&file) {
            Ok(_) => panic!("{file} loaded but is invalid"),
            Err(error) => error,
        };
        let LoadError::Invalid { diagnostics, .. } = &error else {
            panic!("{file}: {error}")
        };
        assert!(!diagnostics.is_empty(), "{file}");
        let mut rendered = format!("{error}\n");
        for diagnostic in diagnostics {
            assert!(
                diagnostic.line >= 1 && diagnostic.column >= 1,
                "{file}: {diagnostic}"
            );
            rendered.push_str(&format!("{diagnostic}\n"));
        }
        let name = Path::new(&file)
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        insta::with_settings!({ snapshot_suffix => name, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("invalid", rendered);
        });
    }
}

#[test]
fn durations_and_retry_are_read_into_the_model() {
    use std::time::Duration;

    let loaded =
        load_relative("tests/fixtures/valid/retry-and-durations.yaml").expect("fixture loads");
    let workflow = &loaded.workflow;
    assert_eq!(workflow.timeout, Some(Duration::from_secs(90 * 60)));
    let fetch = &workflow.steps[0];
    assert_eq!(fetch.timeout(), Duration::from_secs(30));
    let retry = fetch.retry.as_ref().expect("fetch retries");
    assert_eq!(retry.max_attempts, 5);
    assert_eq!(retry.backoff.initial, Duration::from_millis(250));
    assert_eq!(retry.backoff.max, Duration::from_secs(10));
    assert_eq!(retry.backoff.multiplier, 1.5);
    let process = &workflow.steps[1];
    assert_eq!(process.timeout(), Duration::from_millis(500));
    assert_eq!(
        process.retry.as_ref().expect("process retries").backoff,
        pallet::workflow::Backoff::default()
    );
    assert_eq!(workflow.steps[2].timeout(), Duration::from_secs(300));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn nested_containers_keep_their_shape() {
    use pallet::workflow::StepKind;

    let loaded =
        load_relative("tests/fixtures/valid/nested-containers.yaml").expect("fixture loads");
    let workflow = &loaded.workflow;
    assert_eq!(
        workflow.metadata.version.to_string(),
        "2.1.0-beta.1+build.5"
    );
    let StepKind::Parallel { steps } = workflow.steps[1].kind() else {
        panic!("fan_out is parallel")
    };
    let ids: Vec<&str> = steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids, ["quality", "deep", "maybe_docs"]);
    assert_eq!(workflow.steps[1].max_concurrency, Some(2));
    assert_eq!(workflow.steps[1].fail_fast, Some(false));
    let StepKind::Switch { cases } = workflow.steps[2].kind() else {
        panic!("route is a switch")
    };
    assert_eq!(
        cases.keys().collect::<Vec<_>>(),
        ["code_generation", "default"]
    );
    assert_eq!(workflow.all_steps().len(), 15);
}

/// A long chain of steps, each reading the previous one, inside nested containers.
fn large_workflow(steps: usize) -> String {
    let mut text = String::from(
        "metadata: {id: large, name: Large, version: 1.0.0}\nsteps:\n  - {id: step0, skill: s, outputs: result}\n",
    );
    for index in 1..steps {
        let previous = index - 1;
        if index % 10 == 0 {
            text.push_str(&format!(
                "  - id: step{index}\n    step_type: parallel\n    branches:\n      steps:\n        - {{id: inner{index}, skill: s, inputs: {{x: '{{{{ steps.step{previous}.outputs }}}}'}}}}\n"
            ));
        } else {
            text.push_str(&format!(
                "  - id: step{index}\n    skill: s\n    outputs: result\n    timeout: 30s\n    inputs:\n      value: \"{{{{ steps.step{previous}.outputs }}}} and {{{{ workflow.input.name }}}}\"\n"
            ));
        }
    }
    text
}

#[test]
fn a_hundred_step_workflow_validates_quickly() {
    let text = large_workflow(100);
    let started = std::time::Instant::now();
    let loaded = load_str("large.yaml", &text).expect("large workflow loads");
    let first = started.elapsed();
    let started = std::time::Instant::now();
    load_str("large.yaml", &text).expect("large workflow loads");
    let second = started.elapsed();
    assert_eq!(loaded.workflow.all_steps().len(), 109);
    // Generous bounds against flakiness on a busy machine: debug builds are ~10x slower than release.
    assert!(
        first.as_millis() < 3000,
        "first load (compiles the schema) took {first:?}"
    );
    assert!(second.as_millis() < 1000, "second load took {second:?}");
    eprintln!("100 steps: first load {first:?}, second {second:?}");
}

#[test]
fn huge_durations_are_diagnostics_not_panics() {
    let cases = [
        ("timeout: 1e30", "/steps/0/timeout"),
        ("timeout: \"18446744073709551615s\"", "/steps/0/timeout"),
        ("timeout: 2592001", "/steps/0/timeout"),
        ("timeout: 31 days", "/steps/0/timeout"),
        (
            "retry: { max_attempts: 2, backoff: { max: 1e300 } }",
            "/steps/0/retry/backoff/max",
        ),
    ];
    for (field, pointer) in cases {
        let text = format!(
            "metadata: {{id: x, name: X, version: 1.0.0}}\nsteps:\n  - {{id: a, skill: s, {field}}}\n"
        );
        let error = load_str("huge.yaml", &text).expect_err(field);
        let LoadError::Invalid { diagnostics, .. } = &error else {
            panic!("{field}: {error}")
        };
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert!(
            rendered.iter().any(|line| line.contains(pointer)
                && (line.contains("at most") || line.contains("maximum"))),
            "{field}: {rendered:?}"
        );
    }
    let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n  - {id: a, skill: s, timeout: 30 days}\n";
    assert!(load_str("ok.yaml", text).is_ok());
}

/// 10,000 steps each naming two unknown steps: linear checks, 100 problems listed.
#[test]
fn twenty_thousand_unknown_references_validate_quickly_and_list_a_hundred() {
    let mut text = String::from("metadata: {id: many, name: Many, version: 1.0.0}\nsteps:\n");
    for index in 0..10_000 {
        text.push_str(&format!(
            "- {{id: s{index}, skill: s, inputs: {{x: '{{{{steps.u{index}}}}}{{{{steps.v{index}}}}}'}}}}\n"
        ));
    }
    assert!(
        text.len() < pallet::workflow::max_workflow_bytes(),
        "{}",
        text.len()
    );
    let started = std::time::Instant::now();
    let error = load_str("many.yaml", &text).unwrap_err();
    let took = started.elapsed();
    eprintln!("20,000 unknown references: {took:?}");
    // Debug builds are ~10x slower than release (about 0.1 s there).
    assert!(took.as_secs() < 10, "validation took {took:?}");
    let LoadError::Invalid {
        diagnostics,
        omitted,
        ..
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!((diagnostics.len(), *omitted), (100, 19_900));
    assert_eq!(
        error.to_string(),
        "many.yaml is not a valid workflow (20000 problems)"
    );
    assert_eq!(
        error.omitted_line().as_deref(),
        Some("and 19900 more problems (only the first 100 are listed)")
    );
    assert_eq!(
        diagnostics[0].to_string(),
        "many.yaml:3:34: template refers to unknown step `u0`\n  at /steps/0/inputs/x\n  hint: did you mean `s0`?"
    );
}

/// Runs `check` on a thread with a `kib` KiB stack (a stack overflow aborts the test binary).
fn on_small_stack(kib: usize, check: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(kib * 1024)
        .spawn(check)
        .unwrap()
        .join()
        .expect("no panic");
}

/// Every walk after loading is bounded by the load-time limits: a workflow at
/// the limits (16 nested containers, inputs nested to the YAML depth limit)
/// loads and compiles on a small stack (512 KiB covers a debug build), and one
/// past them is refused on 256 KiB.
#[test]
fn workflows_at_the_nesting_limits_load_on_a_small_stack() {
    let mut at_limit =
        String::from("metadata: {id: deep, name: Deep, version: 1.0.0}\nsteps:\n  - ");
    for index in 0..16 {
        at_limit.push_str(&format!(
            "{{id: c{index}, step_type: parallel, branches: {{steps: ["
        ));
    }
    // The leaf step mapping sits 51 levels deep; its inputs may nest 13 more.
    at_limit.push_str(&format!(
        "{{id: leaf, skill: s, inputs: {{x: {}'{{{{ workflow.input.x }}}}'{}}}}}",
        "[".repeat(12),
        "]".repeat(12)
    ));
    at_limit.push_str(&"]}}".repeat(16));
    at_limit.push('\n');
    let past_limit = at_limit
        .replacen("{x: [", "{x: [[", 1)
        .replacen("]]}", "]]]}", 1);
    on_small_stack(256, move || {
        let error = load_str("deep.yaml", &past_limit).unwrap_err();
        assert!(
            error.to_string().contains("not a valid workflow"),
            "{error}"
        );
    });
    on_small_stack(512, move || {
        let loaded = load_str("deep.yaml", &at_limit).unwrap_or_else(|error| panic!("{error:?}"));
        loaded.renderer().expect("templates compile");
    });
}
