//! The refinement contract between `review_code` and `generate_code`, as a
//! loop (build → review → build with the review) uses it: the review's
//! optional `min_score` and `strict` inputs, and the build's optional
//! `feedback`, read into the changes the build knows how to make. Without
//! these inputs both skills behave as they always did.

use serde_json::Value;

use super::{SkillError, object_field};

/// The quality score `approved` needs when the input names none.
pub const DEFAULT_MIN_SCORE: i64 = 70;

/// What the review asks of the build, beyond the plan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Add a test of its own for `validate_input`.
    pub test_validation: bool,
    /// The messages of the issues acted on, in the review's order.
    pub addressed: Vec<String>,
}

/// The strict review's message for a function no test is named after; the
/// build recognises it in feedback, so both sides share this one function.
pub fn untested_message(function: &str) -> String {
    format!("function '{function}' has no test of its own")
}

/// `min_score`: an integer from 0 to 100 (or its text); None when absent or null.
pub fn min_score(input: &Value) -> Result<Option<i64>, SkillError> {
    let value = match input.get("min_score") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(value) => value.as_i64(),
    };
    match value {
        Some(score) if (0..=100).contains(&score) => Ok(Some(score)),
        _ => Err(SkillError::InvalidInput {
            skill: "review_code".to_string(),
            reason: format!(
                "min_score must be an integer from 0 to 100, got {}",
                input["min_score"]
            ),
        }),
    }
}

/// `strict`: also require a test named after every function.
pub fn strict(input: &Value) -> Result<bool, SkillError> {
    match input.get("strict") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(strict)) => Ok(*strict),
        Some(other) => Err(SkillError::InvalidInput {
            skill: "review_code".to_string(),
            reason: format!("strict must be true or false, got {other}"),
        }),
    }
}

/// The functions (not tests, not `main`) that no test function is named
/// after (`test_validate_input`, `testValidateInput`). Only checked when the
/// code has test functions: without any, "no tests found" already says it.
pub fn untested<'a>(functions: &[(&'a str, bool)]) -> Vec<&'a str> {
    let normal = |name: &str| name.replace('_', "").to_lowercase();
    let tests: Vec<String> = functions
        .iter()
        .filter(|(_, test)| *test)
        .map(|(name, _)| normal(name))
        .collect();
    if tests.is_empty() {
        return Vec::new();
    }
    functions
        .iter()
        .filter(|(name, test)| !test && *name != "main")
        .filter(|(name, _)| !tests.iter().any(|test| test.contains(&normal(name))))
        .map(|(name, _)| *name)
        .collect()
}

/// `feedback`: review_code's output, or a loop's previous-iteration outputs
/// holding one (`{"review": {"result": REVIEW}}`, as `{{ loop.previous }}`
/// gives it); None when absent or null (a loop's first iteration).
pub fn feedback(input: &Value) -> Result<Option<Feedback>, SkillError> {
    match input.get("feedback") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(_) => {}
    }
    let given = object_field(input, "feedback");
    let Some(review) = review_in(&given) else {
        return Err(SkillError::InvalidInput {
            skill: "generate_code".to_string(),
            reason: "feedback holds no review (expected review_code's output, with its `issues`, \
                     or a loop's previous iteration holding one, as `{{ loop.previous }}`)"
                .to_string(),
        });
    };
    let mut feedback = Feedback::default();
    let validation = ["validate_input", "validateInput"].map(untested_message);
    for issue in review["issues"].as_array().into_iter().flatten() {
        let message = issue["message"].as_str().unwrap_or("");
        if validation.iter().any(|known| known == message) {
            feedback.test_validation = true;
            feedback.addressed.push(message.to_string());
        }
    }
    Ok(Some(feedback))
}

/// The review in a feedback value: the value itself, or up to two object
/// levels down (step id, then output name).
fn review_in(value: &Value) -> Option<&Value> {
    let is_review = |value: &Value| value.get("issues").is_some_and(Value::is_array);
    if is_review(value) {
        return Some(value);
    }
    let objects = value.as_object()?;
    objects.values().find_map(|child| {
        if is_review(child) {
            return Some(child);
        }
        child
            .as_object()?
            .values()
            .find(|grandchild| is_review(grandchild))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_min_score_and_strict() {
        let cases = [
            (json!({}), Some(None)),
            (json!({"min_score": null}), Some(None)),
            (json!({"min_score": 90}), Some(Some(90))),
            (json!({"min_score": "0"}), Some(Some(0))),
            (json!({"min_score": 101}), None),
            (json!({"min_score": -1}), None),
            (json!({"min_score": 9.5}), None),
            (json!({"min_score": "high"}), None),
        ];
        for (input, expected) in cases {
            match (min_score(&input), expected) {
                (Ok(score), Some(expected)) => assert_eq!(score, expected, "{input}"),
                (Err(error), None) => assert!(
                    error
                        .to_string()
                        .contains("min_score must be an integer from 0 to 100"),
                    "{error}"
                ),
                (got, _) => panic!("{input}: {got:?}"),
            }
        }
        assert!(!strict(&json!({})).unwrap());
        assert!(strict(&json!({"strict": true})).unwrap());
        let error = strict(&json!({"strict": "yes"})).unwrap_err();
        assert!(
            error.to_string().contains("strict must be true or false"),
            "{error}"
        );
    }

    #[test]
    fn finds_functions_without_a_test_of_their_own() {
        let functions = [
            ("validate_input", false),
            ("factorial", false),
            ("main", false),
            ("test_factorial", true),
        ];
        assert_eq!(untested(&functions), ["validate_input"]);
        let javascript = [("validateInput", false), ("testValidateInput", true)];
        assert!(untested(&javascript).is_empty());
        assert!(untested(&[("f", false)]).is_empty(), "no tests at all");
    }

    #[test]
    fn reads_feedback_as_a_review_or_a_previous_iteration() {
        let review = json!({"approved": false, "issues": [
            {"severity": "warning", "message": untested_message("validate_input")},
            {"severity": "info", "message": "line is 120 characters long (limit 100)"},
        ]});
        let expected = Feedback {
            test_validation: true,
            addressed: vec![untested_message("validate_input")],
        };
        let previous = json!({"build": {"result": {"code": "x"}}, "review": {"result": review}});
        for given in [
            review.clone(),
            previous.clone(),
            json!(previous.to_string()),
        ] {
            let read = feedback(&json!({ "feedback": given })).unwrap();
            assert_eq!(read.as_ref(), Some(&expected), "{given}");
        }
        let approved = json!({"feedback": {"issues": []}});
        assert_eq!(feedback(&approved).unwrap(), Some(Feedback::default()));
        for absent in [
            json!({}),
            json!({"feedback": null}),
            json!({"feedback": ""}),
        ] {
            assert_eq!(feedback(&absent).unwrap(), None, "{absent}");
        }
        for bad in [
            json!({"feedback": {"code": "x"}}),
            json!({"feedback": "fix it"}),
        ] {
            let error = feedback(&bad).unwrap_err();
            assert!(
                error.to_string().contains("feedback holds no review"),
                "{error}"
            );
        }
    }
}
