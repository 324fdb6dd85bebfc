//! The workflow's side of templates: it hands the template module the sites
//! of every step (input values and condition), so `template` stays a leaf.

use super::Workflow;
use crate::template::StepSites;

impl Workflow {
    /// The template sites of every step, nested ones included.
    pub fn template_sites(&self) -> impl Iterator<Item = StepSites<'_>> {
        self.all_steps().into_iter().map(|step| StepSites {
            step: &step.id,
            inputs: &step.inputs,
            // for_each `items` and loop `until` take the condition's place:
            // the schema allows no `condition` on those steps.
            condition: step
                .condition
                .as_deref()
                .or(step.items.as_deref())
                .or(step.until.as_deref()),
            guard: step.guard.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::template::{Renderer, Scope, TemplateError, check};

    const WORKFLOW: &str = "
metadata: {id: test, name: Test, version: 1.0.0}
steps:
  - id: target
    skill: do_it
";

    fn input() -> Value {
        json!({"name": "Ada", "flag": true, "count": 3, "off": "false"})
    }

    /// A workflow with one step `target` holding `value` as input `value` and `condition`.
    fn one_step_workflow(value: Value, condition: Option<&str>) -> Workflow {
        let mut workflow: Workflow = crate::yaml::from_snippet(WORKFLOW).unwrap();
        workflow.steps[0].inputs = Map::from_iter([("value".to_string(), value)]);
        workflow.steps[0].condition = condition.map(str::to_string);
        workflow
    }

    #[test]
    fn check_reports_every_broken_template() {
        let workflow: Workflow = crate::yaml::from_snippet(
            "
metadata: {id: test, name: Test, version: 1.0.0}
steps:
  - id: first
    skill: do_it
    inputs:
      good: '{{ workflow.input.x }}'
      partial: '{{> other }}'
      nested: {list: [1, '{{ requirements }}']}
  - id: branch
    step_type: conditional
    condition: '{{ eq steps.first.outputs.x'
    branches:
      if_true:
        - id: inner
          skill: do_it
          inputs: {text: 'Hello {{ name }}'}
",
        )
        .unwrap();
        let found: Vec<(String, Option<String>, String)> = check(workflow.template_sites())
            .iter()
            .map(|error| {
                let location = error.location().map(ToString::to_string);
                (error.step().to_string(), location, error.to_string())
            })
            .collect();
        let expected = [
            (
                "first",
                "input `partial`",
                "partials are not allowed in templates",
            ),
            (
                "first",
                "input `nested.list[1]`",
                "`requirements` does not exist",
            ),
            ("branch", "condition", "invalid template"),
            ("inner", "input `text`", "`name` does not exist"),
        ];
        assert_eq!(found.len(), expected.len(), "{found:?}");
        for ((step, location, message), (expected_step, expected_location, part)) in
            found.iter().zip(expected)
        {
            assert_eq!(
                (step.as_str(), location.as_deref()),
                (expected_step, Some(expected_location))
            );
            assert!(message.contains(part), "{message}");
        }
        assert!(
            check(one_step_workflow(json!("{{ workflow.input }}"), Some("x")).template_sites())
                .is_empty()
        );
    }

    #[test]
    fn nested_steps_of_the_example_router_resolve() {
        let workflow: Workflow =
            crate::yaml::from_snippet(include_str!("../../workflows/smart-router.yaml")).unwrap();
        let renderer = Renderer::new(workflow.template_sites()).unwrap();
        let input = json!({"requirements": "Create a factorial function"});
        let mut steps = HashMap::new();
        let scope = Scope {
            input: &input,
            steps: &steps,
            locals: None,
            outer: &[],
        };
        let analyze = &workflow.steps[0];
        assert_eq!(
            renderer.inputs(&analyze.id, &scope).unwrap(),
            Map::from_iter([("request".to_string(), json!("Create a factorial function"))])
        );
        steps.insert(
            "analyze".to_string(),
            json!({"request_type": "code_generation"}),
        );
        let scope = Scope {
            input: &input,
            steps: &steps,
            locals: None,
            outer: &[],
        };
        let route = &workflow.steps[1];
        assert_eq!(
            renderer.condition(&route.id, &scope).unwrap(),
            json!("code_generation")
        );
        let generate = &route.branches["code_generation"][0];
        assert_eq!(
            Value::Object(renderer.inputs(&generate.id, &scope).unwrap()),
            json!({"workflow_id": "code-generation-v1", "input": input})
        );
        let stranger = one_step_workflow(Value::Null, None);
        let error = renderer.inputs(&stranger.steps[0].id, &scope).unwrap_err();
        assert!(
            matches!(error, TemplateError::UnknownStep { .. }),
            "{error:?}"
        );
    }

    /// A chain of steps, each reading the previous one's output, as the engine would run it.
    #[test]
    fn long_chains_resolve_step_by_step() {
        let mut workflow = one_step_workflow(Value::Null, None);
        let template = workflow.steps[0].clone();
        workflow.steps = (0..100)
            .map(|index| {
                let mut step = template.clone();
                step.id = format!("step{index}");
                let previous = format!("{{{{ steps.step{}.outputs.result }}}}", index.max(1) - 1);
                step.inputs = Map::from_iter([
                    ("data".to_string(), json!(previous)),
                    (
                        "note".to_string(),
                        json!(format!("after {previous}: {{{{ workflow.input.name }}}}")),
                    ),
                ]);
                step
            })
            .collect();
        let renderer = Renderer::new(workflow.template_sites()).unwrap();
        let input = input();
        let mut steps = HashMap::from([("step0".to_string(), json!({"result": {"n": 0}}))]);
        for (index, step) in workflow.steps.iter().enumerate().skip(1) {
            let scope = Scope {
                input: &input,
                steps: &steps,
                locals: None,
                outer: &[],
            };
            let inputs = renderer.inputs(&step.id, &scope).unwrap();
            assert_eq!(inputs["data"], json!({"n": index - 1}));
            assert_eq!(
                inputs["note"],
                json!(format!(r#"after {{"n":{}}}: Ada"#, index - 1))
            );
            steps.insert(step.id.clone(), json!({"result": {"n": index}}));
        }
    }
}
