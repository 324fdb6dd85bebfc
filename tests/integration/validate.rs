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
