//! Property tests (a bounded fuzz run on every `cargo test`) of the YAML
//! loader and the template compiler on hostile input: deep nesting, aliases,
//! NUL and other control characters, byte order marks, long scalars and random
//! edits of a valid workflow. Properties: no panic, an error always has a
//! position, and every case ends quickly.

use std::time::{Duration, Instant};

use pallet::template::{Renderer, Scope};
use pallet::workflow::{LoadError, load_str};
use proptest::prelude::*;
use serde_json::json;

const VALID: &str = "metadata: {id: fuzz, name: Fuzz, version: 1.0.0}\nsteps:\n  - id: a\n    skill: s\n    outputs: result\n    inputs:\n      x: '{{ workflow.input.x }}'\n  - id: b\n    step_type: parallel\n    branches:\n      steps:\n        - {id: c, skill: s, inputs: {y: '{{ steps.a.outputs.result }}'}}\n";

/// Pieces that stress a YAML parser, inserted at random places.
fn hostile_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\0".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{7}".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a\n".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("? ".to_string()),
        Just("---\n".to_string()),
        Just("\t".to_string()),
        (1usize..300).prop_map(|depth| "- ".repeat(depth)),
        (1usize..300).prop_map(|depth| "[".repeat(depth)),
        (1usize..100).prop_map(|depth| "{a: ".repeat(depth)),
        (1usize..100_000).prop_map(|length| "x".repeat(length)),
        "[ -~\n]{0,40}",
    ]
}

/// A valid workflow with hostile pieces inserted at random byte offsets.
fn hostile_workflow() -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), hostile_piece()), 1..6).prop_map(|edits| {
        let mut text = VALID.to_string();
        for (place, piece) in edits {
            let mut offset = place.index(text.len() + 1);
            while !text.is_char_boundary(offset) {
                offset -= 1;
            }
            text.insert_str(offset, &piece);
        }
        text
    })
}

fn check_load(text: &str) {
    let started = Instant::now();
    match load_str("fuzz.yaml", text) {
        Ok(loaded) => {
            // What loads compiles or fails cleanly.
            let _ = loaded.renderer();
        }
        Err(LoadError::Invalid { diagnostics, .. }) => {
            assert!(!diagnostics.is_empty());
            for diagnostic in &diagnostics {
                assert!(
                    diagnostic.line >= 1 && diagnostic.column >= 1,
                    "{diagnostic}"
                );
            }
        }
        Err(error) => panic!("unexpected error: {error}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Template text: handlebars syntax pieces in random order.
fn hostile_template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{{#each workflow.input.items}}".to_string()),
        Just("{{#if workflow.input.x}}".to_string()),
        Just("{{else}}".to_string()),
        Just("{{/each}}".to_string()),
        Just("{{/if}}".to_string()),
        Just("{{> partial}}".to_string()),
        Just("{{#*inline \"p\"}}".to_string()),
        Just("{{ frobnicate x }}".to_string()),
        Just("{{ eq (len workflow.input.items) 3 }}".to_string()),
        Just("{{ this }}".to_string()),
        Just("{{ workflow.input.x }}".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("\\".to_string()),
        "[ -~]{0,12}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_yaml_never_panics_and_errors_have_positions(text in hostile_workflow()) {
        check_load(&text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_load(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn hostile_templates_compile_or_fail_cleanly_and_render_bounded(template in hostile_template()) {
        let text = format!(
            "metadata: {{id: fuzz, name: Fuzz, version: 1.0.0}}\nsteps:\n  - id: a\n    skill: s\n    inputs:\n      t: {}\n",
            serde_json::to_string(&template).unwrap()
        );
        check_load(&text);
        if let Ok(loaded) = load_str("fuzz.yaml", &text)
            && let Ok(renderer) = loaded.renderer()
        {
            let input = json!({"x": "1", "items": (0..50).collect::<Vec<u32>>()});
            let steps = std::collections::HashMap::new();
            let scope = Scope { input: &input, steps: &steps, locals: None, outer: &[] };
            let started = Instant::now();
            let _ = renderer.inputs(&loaded.workflow.steps[0].id, &scope);
            prop_assert!(started.elapsed() < Duration::from_secs(5));
        }
        // The compiler alone, on whatever validation let through or not.
        let workflow: Result<pallet::workflow::Workflow, _> = serde_json::from_value(json!({
            "metadata": {"id": "fuzz", "name": "Fuzz", "version": "1.0.0"},
            "steps": [{"id": "a", "skill": "s", "inputs": {"t": template}}],
        }));
        if let Ok(workflow) = workflow {
            let _ = Renderer::new(workflow.template_sites());
        }
    }
}
