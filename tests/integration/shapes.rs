//! Steps against the schemas their agents publish, with real agents
//! (`pallet agent serve` in-process, skills that count their calls): a step
//! input that does not fit, or a read of an output field the output schema
//! cannot have, fails the run before any call; a workflow that fits runs;
//! an agent without schemas changes nothing; a legacy card's `input_schema`
//! is read; `pallet validate --agent` and `pallet run` report the same problems.

use std::sync::Arc;

use pallet::agent::StaticDiscovery;
use pallet::agent::server::{AgentDefinition, ServerError, serve};
use pallet::engine::{Engine, RunRecord, RunStatus, StepStatus};
use pallet::workflow::{DirectorySource, load_str};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::TestContext;
use crate::support::snapshot::{settings, transcript};

/// Skills that publish schemas: `plan` (its output closed to other fields)
/// and `review`. Each call appends a line to `{dir}/calls`.
const PLANNER: &str = r#"
name: planner
description: Plans, with published schemas
version: 1.0.0
skills:
  - id: plan
    run: [sh, -c, 'cat > /dev/null; echo plan >> "{dir}/calls"; echo "{\"title\": \"T\", \"steps\": [{\"name\": \"one\"}]}"']
    input_schema:
      type: object
      required: [requirements]
      additionalProperties: false
      properties:
        requirements: {type: string, description: What to build}
        depth: {type: integer, minimum: 1}
    output_schema:
      type: object
      required: [title, steps]
      additionalProperties: false
      properties:
        title: {type: string}
        steps:
          type: array
          items: {type: object, properties: {name: {type: string}}}
  - id: review
    run: [sh, -c, 'cat > /dev/null; echo review >> "{dir}/calls"; echo "{\"approved\": true}"']
    input_schema:
      type: object
      required: [text]
      properties:
        text: {type: string}
    output_schema:
      type: object
      properties:
        approved: {type: boolean}
"#;

/// The same skills without any schema: they echo their input.
const PLAIN: &str = r#"
name: plain
description: Echoes, publishing no schemas
version: 1.0.0
skills:
  - id: plan
    run: [sh, -c, 'cat > /dev/null; echo plan >> "{dir}/calls"; echo "{\"title\": \"T\"}"']
  - id: review
    run: [sh, -c, 'echo review >> "{dir}/calls"; cat']
"#;

/// A step input that misses a required property and has a literal of the
/// wrong type, and a key the schema does not allow.
const BAD_INPUTS: &str = "metadata: {id: bad-inputs, name: Bad inputs, version: 1.0.0}
steps:
  - id: plan
    skill: plan
    inputs:
      depth: two
      langauge: rust
  - id: review
    skill: review
    inputs:
      text: '{{ steps.plan.outputs.title }}'
";

/// A read of an output field the output schema of `plan` cannot have, and
/// a whole value of the wrong type.
const BAD_READS: &str = "metadata: {id: bad-reads, name: Bad reads, version: 1.0.0}
steps:
  - id: plan
    skill: plan
    inputs:
      requirements: '{{ workflow.input.requirements }}'
  - id: review
    skill: review
    inputs:
      text: '{{ steps.plan.outputs.steps }}'
      note: 'about {{ steps.plan.outputs.titel }}'
";

/// What fits: the inputs the schemas want, reads the output schema allows.
const FITS: &str = "metadata: {id: fits, name: Fits, version: 1.0.0}
steps:
  - id: plan
    skill: plan
    inputs:
      requirements: '{{ workflow.input.requirements }}'
      depth: 2
  - id: review
    skill: review
    if: '{{ steps.plan.outputs.steps.0.name }}'
    inputs:
      text: 'The plan {{ steps.plan.outputs.title }} starts with {{ steps.plan.outputs.steps.0.name }}'
";

/// A served agent; stops when dropped.
struct SchemaAgent {
    url: String,
    directory: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    _server: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl SchemaAgent {
    async fn start(yaml: &str) -> SchemaAgent {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.yaml");
        let yaml = yaml.replace("{dir}", &directory.path().to_string_lossy());
        std::fs::write(&path, yaml).unwrap();
        let definition = AgentDefinition::load(&path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(definition, listener, Default::default(), async {
            let _ = stopped.await;
        }));
        SchemaAgent {
            url,
            directory,
            _stop: stop,
            _server: server,
        }
    }

    /// The skills called so far, in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.directory.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

async fn run(agent_url: String, text: &str) -> RunRecord {
    let empty = tempfile::tempdir().unwrap();
    let engine = Engine::builder(
        Arc::new(StaticDiscovery::new(vec![agent_url])),
        Arc::new(DirectorySource::new(empty.path())),
    )
    .build();
    let loaded = load_str("w.yaml", text).unwrap_or_else(|error| panic!("{error:?}"));
    engine
        .run(
            Arc::new(loaded),
            json!({"requirements": "a parser"}),
            CancellationToken::new(),
        )
        .await
}

fn assert_nothing_ran(record: &RunRecord) {
    assert_eq!(record.status, RunStatus::Failed, "{record:#?}");
    assert!(
        record
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Skipped),
        "{:#?}",
        record.steps
    );
}

#[tokio::test]
async fn a_step_input_that_does_not_fit_fails_the_run_before_any_call() {
    let agent = SchemaAgent::start(PLANNER).await;
    let record = run(agent.url.clone(), BAD_INPUTS).await;
    assert_nothing_ran(&record);
    assert_eq!(agent.calls(), Vec::<String>::new());
    let error = record.error.unwrap();
    let expected = [
        "the steps of workflow `bad-inputs` do not fit the schemas their agents publish (3 problems): ",
        "w.yaml:6:7: step `plan` does not give the input `requirements`, which the input schema of skill `plan` (agent `planner`) requires (at /required) (hint: add `requirements` to the step's inputs (What to build))",
        "w.yaml:6:14: step `plan`, input `depth`: \"two\" is not of type \"integer\", which the input schema of skill `plan` (agent `planner`) does not accept (at /properties/depth/type)",
        "w.yaml:7:7: step `plan` gives the input `langauge`, which the input schema of skill `plan` (agent `planner`) does not allow: at /additionalProperties, there is no property `langauge` and no other is allowed (the properties: requirements, depth)",
    ];
    for part in expected {
        assert!(error.contains(part), "{part}\nnot in\n{error}");
    }
}

#[tokio::test]
async fn a_read_of_an_output_field_the_schema_cannot_have_fails_the_run_before_any_call() {
    let agent = SchemaAgent::start(PLANNER).await;
    let record = run(agent.url.clone(), BAD_READS).await;
    assert_nothing_ran(&record);
    assert_eq!(agent.calls(), Vec::<String>::new());
    let error = record.error.unwrap();
    let expected = [
        "(2 problems)",
        "w.yaml:10:13: step `review` passes `steps.plan.outputs.steps` as the input `text`: by its output schema that is an array, but the input schema of skill `review` (agent `planner`) wants a string (at /properties/text)",
        "w.yaml:11:13: step `review` reads `steps.plan.outputs.titel`, which the output schema of skill `plan` (agent `planner`) rules out: at /additionalProperties, there is no property `titel` and no other is allowed (the properties: title, steps) (hint: did you mean `steps.plan.outputs.title`?)",
    ];
    for part in expected {
        assert!(error.contains(part), "{part}\nnot in\n{error}");
    }
}

#[tokio::test]
async fn a_workflow_that_fits_the_schemas_runs() {
    let agent = SchemaAgent::start(PLANNER).await;
    let record = run(agent.url.clone(), FITS).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls(), ["plan", "review"]);
    assert_eq!(record.output, Some(json!({"approved": true})));
}

#[tokio::test]
async fn agents_without_schemas_change_nothing() {
    let agent = SchemaAgent::start(PLAIN).await;
    // What the schemas of `planner` refuse, an agent without schemas is sent.
    let record = run(agent.url.clone(), BAD_INPUTS).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(agent.calls(), ["plan", "review"]);
    assert_eq!(
        record.steps[0].inputs,
        Some(json!({"depth": "two", "langauge": "rust"}))
    );
}

#[tokio::test]
async fn a_legacy_card_publishes_its_input_schema_too() {
    let agent = SchemaAgent::start(PLANNER).await;
    let card: Value = reqwest::get(format!("{}/agent-card", agent.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        card["skills"][0]["input_schema"]["required"],
        json!(["requirements"])
    );
    let record = run(format!("{}/agent-card", agent.url), BAD_INPUTS).await;
    assert_nothing_ran(&record);
    assert_eq!(agent.calls(), Vec::<String>::new());
    let error = record.error.unwrap();
    assert!(
        error.contains("step `plan` does not give the input `requirements`, which the input schema of skill `plan` (agent `planner`) requires"),
        "{error}"
    );
}

/// `pallet ARGS` in `context`, off the async runtime (the agents answer on it).
async fn pallet(context: &TestContext, arguments: &[&str]) -> std::process::Output {
    let context = context.clone();
    let arguments: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
    tokio::task::spawn_blocking(move || context.pallet().args(&arguments).output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_with_agents_reports_what_a_run_would_refuse() {
    let (planner, plain) = tokio::join!(SchemaAgent::start(PLANNER), SchemaAgent::start(PLAIN));
    let context = TestContext::new();
    context.write("bad-inputs.yaml", BAD_INPUTS);
    context.write("bad-reads.yaml", BAD_READS);
    context.write("fits.yaml", FITS);
    context.write(
        "unknown.yaml",
        "metadata: {id: unknown, name: Unknown, version: 1.0.0}\nsteps:\n  - {id: a, skill: plna}\n",
    );
    let snapshot = |name: &str, arguments: &[&str], output: &std::process::Output| {
        let mut settings = settings(&context);
        settings.set_snapshot_suffix(name);
        settings.bind(|| insta::assert_snapshot!("shapes", transcript(arguments, output)));
    };
    let arguments = [
        "validate",
        "--agent",
        &planner.url,
        "bad-inputs.yaml",
        "bad-reads.yaml",
        "fits.yaml",
        "unknown.yaml",
    ];
    let output = pallet(&context, &arguments).await;
    assert_eq!(output.status.code(), Some(2));
    snapshot("validate", &arguments, &output);

    // The same problems in the JSON report.
    let json_arguments = [
        "validate",
        "--json",
        "--agents",
        &planner.url,
        "bad-reads.yaml",
        "fits.yaml",
    ];
    let output = pallet(&context, &json_arguments).await;
    assert_eq!(output.status.code(), Some(2));
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["valid"], false);
    let diagnostics = reports[0]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    assert_eq!(
        (
            &diagnostics[1]["line"],
            &diagnostics[1]["column"],
            &diagnostics[1]["pointer"]
        ),
        (&json!(11), &json!(13), &json!("/steps/1/inputs/note"))
    );
    assert_eq!(reports[1]["valid"], true);

    // An agent without schemas: nothing to report; without --agent, nothing is asked.
    for arguments in [
        vec!["validate", "--agent", plain.url.as_str(), "bad-inputs.yaml"],
        vec!["validate", "bad-inputs.yaml"],
    ] {
        let output = pallet(&context, &arguments).await;
        assert_eq!(output.status.code(), Some(0), "{arguments:?}: {output:?}");
    }

    // `pallet run` refuses it the same way, before any call.
    let run_arguments = [
        "run",
        "--file",
        "bad-reads.yaml",
        "--agent",
        &planner.url,
        "a parser",
    ];
    let output = pallet(&context, &run_arguments).await;
    assert_eq!(output.status.code(), Some(1));
    snapshot("run", &run_arguments, &output);
    assert_eq!(planner.calls(), Vec::<String>::new());
    assert_eq!(plain.calls(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_past_the_bounds_is_ignored_with_a_warning() {
    let description = "x".repeat(pallet::agent::card::MAX_SKILL_SCHEMA_BYTES);
    let definition = format!(
        r#"
name: big
description: Publishes a schema too large to be read
version: 1.0.0
skills:
  - id: plan
    run: [sh, -c, 'cat']
    input_schema:
      type: object
      required: [requirements]
      description: {description}
"#
    );
    let agent = SchemaAgent::start(&definition).await;
    let context = TestContext::new();
    context.write("bad-inputs.yaml", BAD_INPUTS);
    let output = pallet(
        &context,
        &["validate", "--agent", &agent.url, "bad-inputs.yaml"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("agent `big`: the input_schema of skill `plan` is ignored (its steps are not checked against it): it is larger than 262144 bytes as JSON (the limit)"),
        "{stderr}"
    );
    // Only the skill no agent offers is a problem: `plan` is not checked.
    assert!(
        stderr.contains("no agent offers skill `review`"),
        "{stderr}"
    );
    assert!(!stderr.contains("does not give the input"), "{stderr}");
}
