//! `pallet completions`, `pallet man` and `pallet schema`: what they print
//! works where it is used (bash completes with the script, the man pages
//! are roff per command, the schema is the one the binary checks with).

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::TestContext;

fn stdout_of(context: &TestContext, args: &[&str]) -> String {
    let output = context.pallet().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "pallet {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What bash offers for the words typed so far, with the generated script
/// loaded (as `complete -F` calls it on Tab).
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let program = format!(
        "source {script}\nCOMP_WORDS=({line})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_pallet pallet \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        cword = words.len() - 1,
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|word| !word.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_and_options_with_the_generated_script() {
    let context = TestContext::new();
    let script = context.join("pallet.bash");
    std::fs::write(&script, stdout_of(&context, &["completions", "bash"])).unwrap();
    let commands = bash_completes(&script, &["pallet", "se"]);
    assert_eq!(commands, vec!["serve".to_string()], "{commands:?}");
    let options = bash_completes(&script, &["pallet", "serve", "--max-q"]);
    assert_eq!(
        options,
        vec!["--max-queued-runs".to_string()],
        "{options:?}"
    );
    let nested = bash_completes(&script, &["pallet", "runs", "sh"]);
    assert_eq!(nested, vec!["show".to_string()], "{nested:?}");
}

#[test]
fn completions_for_zsh_and_fish_name_every_command() {
    let context = TestContext::new();
    let zsh = stdout_of(&context, &["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef pallet"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = stdout_of(&context, &["completions", "fish"]);
    for command in [
        "validate",
        "run",
        "serve",
        "runs",
        "approve",
        "completions",
        "man",
        "schema",
    ] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh: {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish: {command}"
        );
    }
    // A shell that is not one: a usage error naming the choices.
    let output = context
        .pallet()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}

#[test]
fn man_pages_are_roff_one_per_command() {
    let context = TestContext::new();
    let page = stdout_of(&context, &["man"]);
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..80]);
    assert!(page.contains(".TH pallet 1"), "{page}");
    assert!(
        page.contains("Run declarative, registry\\-backed workflows"),
        "{page}"
    );
    let dir = context.join("man1");
    let said = stdout_of(&context, &["man", "--dir", dir.to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "pallet.1",
        "pallet-run.1",
        "pallet-serve.1",
        "pallet-runs-show.1",
        "pallet-agent-serve.1",
    ] {
        assert!(
            pages.contains(&expected.to_string()),
            "{expected} in {pages:?}"
        );
    }
    assert!(
        said.contains(&format!("{} man pages", pages.len())),
        "{said}"
    );
    let run = std::fs::read_to_string(dir.join("pallet-run.1")).unwrap();
    assert!(run.contains(".TH pallet-run 1"), "{run}");
    assert!(run.contains("\\-\\-workflow"), "{run}");
}

#[test]
fn the_schema_printed_is_the_one_workflows_are_checked_against() {
    let context = TestContext::new();
    let printed: Value = serde_json::from_str(&stdout_of(&context, &["schema"])).unwrap();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/workflow.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, file);
    assert_eq!(
        printed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

/// `pallet init` writes a project whose workflow validates and runs on its
/// own agent as written (only the agents file's port is moved to a free one).
#[test]
fn an_initialised_project_validates_and_runs_as_written() {
    use std::io::{BufRead, BufReader};
    let context = TestContext::new();
    let dir = context.join("project");
    let said = stdout_of(&context, &["init", dir.to_str().unwrap()]);
    for file in [
        "workflows/hello.yaml",
        "agents/hello.yaml",
        "agents.yaml",
        "workflow.schema.json",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
        assert!(said.contains(file), "{said}");
    }
    assert!(
        said.contains("pallet agent serve agents/hello.yaml"),
        "{said}"
    );
    let workflow = std::fs::read_to_string(dir.join("workflows/hello.yaml")).unwrap();
    assert!(workflow.starts_with("# yaml-language-server: $schema=../workflow.schema.json"));

    let mut agent = crate::support::pallet::Spawned::spawn(
        context
            .pallet()
            .current_dir(&dir)
            .args([
                "agent",
                "serve",
                "agents/hello.yaml",
                "--addr",
                "127.0.0.1:0",
            ])
            .stderr(Stdio::piped()),
    );
    let mut lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the agent's address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let agents = std::fs::read_to_string(dir.join("agents.yaml")).unwrap();
    std::fs::write(
        dir.join("agents.yaml"),
        agents.replace("http://127.0.0.1:8001", &url),
    )
    .unwrap();
    let in_project = |args: &[&str]| {
        context
            .pallet()
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let validated = in_project(&[
        "validate",
        "--agents-file",
        "agents.yaml",
        "workflows/hello.yaml",
    ]);
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    let ran = in_project(&[
        "run",
        "--offline",
        "--file",
        "workflows/hello.yaml",
        "--agents-file",
        "agents.yaml",
        "--json",
        "Ada",
    ]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let run: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"],
        serde_json::json!({"result": {"received": {"greeting": "Hello, Ada"}}})
    );

    // Again: refused, nothing touched; with --force, written.
    std::fs::write(dir.join("workflows/hello.yaml"), "mine").unwrap();
    let again = context
        .pallet()
        .args(["init", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("exists; nothing was written") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("workflows/hello.yaml")).unwrap(),
        "mine"
    );
    let forced = stdout_of(
        &context,
        &["init", dir.to_str().unwrap(), "--force", "--json"],
    );
    let forced: Value = serde_json::from_str(&forced).unwrap();
    assert_eq!(forced["files"].as_array().unwrap().len(), 4);
    assert_eq!(
        std::fs::read_to_string(dir.join("workflows/hello.yaml")).unwrap(),
        workflow
    );
}
