use serde_json::{Value, json};

use super::*;

fn plan_input() -> Value {
    json!({
        "type": "object",
        "required": ["requirements"],
        "additionalProperties": false,
        "properties": {
            "requirements": {"type": "string", "description": "What to build"},
            "language": {"type": ["string", "null"]},
            "depth": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "default": "fast"},
        }
    })
}

fn plan_output() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "title": {"type": "string"},
            "steps": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        }
    })
}

fn kind_output() -> Value {
    json!({"type": "string", "enum": ["code", "data"]})
}

/// Problems of `steps_yaml` with `plan` (agent `planner`) and `classify`
/// (agent `router`) publishing schemas, `echo` (agent `plain`) none.
fn problems(steps_yaml: &str) -> Vec<String> {
    let text = format!("metadata: {{id: x, name: X, version: 1.0.0}}\nsteps:\n{steps_yaml}");
    let workflow: Workflow = crate::yaml::from_snippet(&text).expect("test workflow parses");
    let (plan_input, plan_output, kind_output) = (plan_input(), plan_output(), kind_output());
    let published: Published = HashMap::from([
        (
            "plan",
            vec![SkillSchemas {
                agent: "planner",
                input: Some(&plan_input),
                output: Some(&plan_output),
            }],
        ),
        (
            "classify",
            vec![SkillSchemas {
                agent: "router",
                input: None,
                output: Some(&kind_output),
            }],
        ),
        (
            "echo",
            vec![SkillSchemas {
                agent: "plain",
                input: None,
                output: None,
            }],
        ),
    ]);
    check(&workflow, &published)
        .into_iter()
        .map(|problem| {
            format!(
                "{}: {} | {}",
                problem.pointer,
                problem.message,
                problem.hint.unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn inputs_against_the_input_schema() {
    let found = problems(
        "- {id: a, skill: plan, inputs: {langauge: rust, depth: 2.5, language: 3}}\n\
         - {id: b, skill: plan, inputs: {requirements: '{{ workflow.input.x }}', depth: '{{ workflow.input.n }}'}}\n\
         - {id: c, skill: plan}\n",
    );
    assert_eq!(
        found,
        [
            "/steps/0/inputs: step `a` does not give the input `requirements`, which the input schema of skill `plan` (agent `planner`) requires (at /required) | add `requirements` to the step's inputs (What to build)",
            "/steps/0/inputs/langauge: step `a` gives the input `langauge`, which the input schema of skill `plan` (agent `planner`) does not allow: at /additionalProperties, there is no property `langauge` and no other is allowed (the properties: requirements, language, depth, mode) | did you mean `language`?",
            "/steps/0/inputs/depth: step `a`, input `depth`: 2.5 is not of type \"integer\", which the input schema of skill `plan` (agent `planner`) does not accept (at /properties/depth/type) | give a value the input schema accepts, or a template that gives one",
            "/steps/0/inputs/language: step `a`, input `language`: 3 is not of types \"null\", \"string\", which the input schema of skill `plan` (agent `planner`) does not accept (at /properties/language/type) | give a value the input schema accepts, or a template that gives one",
            "/steps/2: step `c` does not give the input `requirements`, which the input schema of skill `plan` (agent `planner`) requires (at /required) | add `requirements` to the step's inputs (What to build)",
        ]
    );
}

#[test]
fn reads_of_outputs_against_the_output_schema() {
    let found = problems(
        "- {id: p, skill: plan, inputs: {requirements: r}}\n\
         - {id: named, skill: plan, outputs: result, inputs: {requirements: r}}\n\
         - {id: k, skill: classify}\n\
         - {id: kn, skill: classify, outputs: kind}\n\
         - {id: e, skill: echo}\n\
         - id: reader\n  skill: echo\n  inputs:\n    good: '{{ steps.p.outputs.title }} {{ steps.p.outputs.steps.0.name }} {{ steps.named.outputs.result.steps }} {{ steps.k.outputs.result }} {{ steps.kn.outputs.kind }} {{ steps.e.outputs.anything.at.all }}'\n    bad: '{{ steps.p.outputs.titel }}{{#if steps.named.outputs.result.steps.0.nmae}}x{{/if}}'\n    worse: '{{ steps.k.outputs.kind }} {{ steps.kn.outputs.kind.x }} {{ steps.p.outputs.result }}'\n",
    );
    assert_eq!(
        found,
        [
            "/steps/5/inputs/bad: step `reader` reads `steps.p.outputs.titel`, which the output schema of skill `plan` (agent `planner`) rules out: at /additionalProperties, there is no property `titel` and no other is allowed (the properties: title, steps) | did you mean `steps.p.outputs.title`?",
            "/steps/5/inputs/worse: step `reader` reads `steps.k.outputs.kind`, which the output schema of skill `classify` (agent `router`) rules out: at /, the answer is a string, never an object, so the step's outputs hold it as `steps.k.outputs.result` | read only what the output schema of `classify` allows (the agent's card publishes it)",
            "/steps/5/inputs/worse: step `reader` reads `steps.kn.outputs.kind.x`, which the output schema of skill `classify` (agent `router`) rules out: at /, the value is a string, which has no field `x` | read only what the output schema of `classify` allows (the agent's card publishes it)",
            "/steps/5/inputs/worse: step `reader` reads `steps.p.outputs.result`, which the output schema of skill `plan` (agent `planner`) rules out: at /additionalProperties, there is no property `result` and no other is allowed (the properties: title, steps) | read only what the output schema of `plan` allows (the agent's card publishes it)",
        ]
    );
}

#[test]
fn a_whole_value_reference_must_be_able_to_have_the_input_type() {
    let found = problems(
        "- {id: p, skill: plan, inputs: {requirements: r}}\n\
         - {id: q, skill: plan, inputs: {requirements: '{{ steps.p.outputs.steps }}', language: '{{ steps.p.outputs.title }}'}}\n\
         - {id: s, skill: plan, inputs: {requirements: 'the {{ steps.p.outputs.steps }}', depth: '{{ steps.p.outputs.steps.0.name }}'}}\n",
    );
    assert_eq!(
        found,
        [
            "/steps/1/inputs/requirements: step `q` passes `steps.p.outputs.steps` as the input `requirements`: by its output schema that is an array, but the input schema of skill `plan` (agent `planner`) wants a string (at /properties/requirements) | pass a field that is a string (a value that is exactly one `{{ }}` keeps its JSON type)",
            "/steps/2/inputs/depth: step `s` passes `steps.p.outputs.steps.0.name` as the input `depth`: by its output schema that is a string, but the input schema of skill `plan` (agent `planner`) wants an integer (at /properties/depth) | pass a field that is an integer (a value that is exactly one `{{ }}` keeps its JSON type)",
        ]
    );
}

#[test]
fn a_step_with_a_failure_handler_may_have_the_handlers_outputs() {
    let steps = "- id: p\n  skill: plan\n  inputs: {requirements: r}\n  on_failure: [{id: fallback, skill: echo}]\n- {id: b, skill: echo, inputs: {y: '{{ steps.p.outputs.from_the_handler }}'}}\n";
    assert_eq!(problems(steps), Vec::<String>::new());
}

#[test]
fn without_schemas_nothing_is_checked() {
    let steps = "- {id: a, skill: echo, inputs: {x: 1}}\n- {id: b, skill: unknown, inputs: {y: '{{ steps.a.outputs.z.w }}'}}\n";
    assert_eq!(problems(steps), Vec::<String>::new());
}

#[test]
fn several_agents_with_one_schema_are_named_together_and_each_schema_is_checked() {
    let text = "metadata: {id: x, name: X, version: 1.0.0}\nsteps:\n- {id: a, skill: plan, inputs: {requirements: r}}\n";
    let workflow: Workflow = crate::yaml::from_snippet(text).unwrap();
    let (same, strict) = (
        plan_input(),
        json!({"type": "object", "required": ["requirements", "budget"]}),
    );
    let agent = |agent, input| SkillSchemas {
        agent,
        input: Some(input),
        output: None,
    };
    let published: Published = HashMap::from([(
        "plan",
        vec![
            agent("one", &same),
            agent("two", &same),
            agent("three", &strict),
        ],
    )]);
    let messages: Vec<String> = check(&workflow, &published)
        .into_iter()
        .map(|problem| problem.message)
        .collect();
    assert_eq!(
        messages,
        [
            "step `a` does not give the input `budget`, which the input schema of skill `plan` (agent `three`) requires (at /required)"
        ]
    );
    let publishers = Checker {
        tree: &Tree::new(&workflow),
        published: &published,
        validators: Default::default(),
    }
    .publishers("plan", |schemas| schemas.input)
    .iter()
    .map(|publisher| publisher.describe("input"))
    .collect::<Vec<_>>();
    assert_eq!(
        publishers,
        [
            "the input schema of skill `plan` (agents `one`, `two`)",
            "the input schema of skill `plan` (agent `three`)",
        ]
    );
}
