//! `aggregate_results`: the parallel analyses (review, security, performance)
//! combined into one score and verdict.

use serde_json::{Value, json};

use super::{SkillError, object_field};

/// Weights of quality, security and performance in the overall score.
const WEIGHTS: [f64; 3] = [0.4, 0.35, 0.25];
const PASSING_SCORE: f64 = 60.0;

pub fn aggregate_results(input: &Value) -> Result<Value, SkillError> {
    let quality = object_field(input, "quality");
    let security = object_field(input, "security");
    let performance = object_field(input, "performance");

    let quality_score = number(&quality, "quality_score").unwrap_or(0.0);
    let approved = quality["approved"].as_bool().unwrap_or(false);
    let quality_issues = count(&quality["issues"]);

    let risk_level = security["risk_level"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let security_score = match risk_level.as_str() {
        "low" => 100.0,
        "medium" => 70.0,
        "high" => 30.0,
        _ => 0.0,
    };
    let security_passed = security["passed"].as_bool().unwrap_or(false);
    let security_findings = count(&security["findings"]);

    let performance_score = number(&performance, "score").unwrap_or(0.0);
    let complexity = performance["complexity_estimate"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let performance_findings = count(&performance["findings"]);

    let scores = [quality_score, security_score, performance_score];
    let overall: f64 = scores
        .iter()
        .zip(WEIGHTS)
        .map(|(score, weight)| score * weight)
        .sum();
    let overall = (overall * 10.0).round() / 10.0;
    let passed = approved && security_passed && performance_score >= PASSING_SCORE;
    let verdict = if passed { "passed" } else { "failed" };
    let summary = format!(
        "{verdict} with overall score {overall}: quality {quality_score} ({}, {quality_issues} issues), security risk {risk_level} ({security_findings} findings), performance {performance_score} ({complexity}, {performance_findings} findings)",
        if approved { "approved" } else { "not approved" },
    );
    Ok(json!({
        "overall_score": overall,
        "passed": passed,
        "summary": summary,
        "quality": {"score": quality_score, "approved": approved, "issues": quality_issues},
        "security": {"score": security_score, "risk_level": risk_level, "passed": security_passed, "findings": security_findings},
        "performance": {"score": performance_score, "complexity_estimate": complexity, "findings": performance_findings},
    }))
}

/// Numbers may arrive as floats or integers (A2A turns 1 into 1.0).
fn number(object: &Value, field: &str) -> Option<f64> {
    object
        .get(field)
        .and_then(Value::as_f64)
        .map(|value| value.clamp(0.0, 100.0))
}

fn count(list: &Value) -> usize {
    list.as_array().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_the_three_analyses() {
        let good_quality = json!({"approved": true, "quality_score": 90.0, "issues": []});
        let low_risk = json!({"risk_level": "low", "passed": true, "findings": []});
        let high_risk = json!({"risk_level": "high", "passed": false, "findings": [{}, {}]});
        let fast = json!({"score": 100, "complexity_estimate": "O(n)", "findings": []});
        let cases = [
            (
                good_quality.clone(),
                low_risk.clone(),
                fast.clone(),
                96.0,
                true,
            ),
            (good_quality.clone(), high_risk, fast.clone(), 71.5, false),
            (json!({}), json!({}), json!({}), 0.0, false),
            (
                json!(good_quality.to_string()),
                json!(low_risk.to_string()),
                json!(fast.to_string()),
                96.0,
                true,
            ),
        ];
        for (quality, security, performance, score, passed) in cases {
            let input =
                json!({"quality": quality, "security": security, "performance": performance});
            let output = aggregate_results(&input).unwrap();
            assert_eq!(output["overall_score"].as_f64().unwrap(), score, "{input}");
            assert_eq!(output["passed"], passed, "{input}");
        }
    }
}
