//! `analyze_request`: keyword classification of a request into the
//! smart-router workflow's cases; the result is the bare case name.

use serde_json::Value;

use super::tasks::words;
use super::{SkillError, text_field};

/// Cases in priority order (ties go to the earlier one), with their keywords;
/// a keyword matches a word that starts with it ("analy" matches "analyse").
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "code_generation",
        &[
            "function",
            "code",
            "implement",
            "program",
            "script",
            "class",
            "api",
            "endpoint",
            "refactor",
            "bug",
            "debug",
            "compile",
            "algorithm",
            "python",
            "javascript",
            "rust",
            "library",
            "module",
            "app",
            "factorial",
            "fibonacci",
            "develop",
            "unit",
            "method",
        ],
    ),
    (
        "data_analysis",
        &[
            "data",
            "dataset",
            "csv",
            "analy",
            "statistic",
            "average",
            "mean",
            "median",
            "chart",
            "plot",
            "trend",
            "correlat",
            "spreadsheet",
            "excel",
            "sales",
            "metric",
            "forecast",
            "visuali",
            "aggregat",
            "distribution",
        ],
    ),
    (
        "text_processing",
        &[
            "summari",
            "translat",
            "text",
            "paragraph",
            "sentence",
            "document",
            "grammar",
            "rewrite",
            "sentiment",
            "keyword",
            "essay",
            "article",
            "proofread",
            "spell",
            "tone",
            "email",
        ],
    ),
];

pub fn analyze_request(input: &Value) -> Result<Value, SkillError> {
    Ok(Value::String(
        classify(text_field(input, "request")).to_string(),
    ))
}

fn classify(request: &str) -> &'static str {
    let words = words(request);
    let mut best = ("general", 0);
    for (category, keywords) in CATEGORIES {
        let score = words
            .iter()
            .filter(|word| keywords.iter().any(|keyword| word.starts_with(keyword)))
            .count();
        if score > best.1 {
            best = (category, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        let cases = [
            (
                "Create a function that calculates the factorial of a number",
                "code_generation",
            ),
            (
                "Analyze the sales data in this CSV and plot the trend",
                "data_analysis",
            ),
            (
                "Summarize this article in three sentences",
                "text_processing",
            ),
            ("What is the weather like?", "general"),
            ("", "general"),
            (
                "Write a Python script that computes the average of a CSV column",
                "code_generation",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(classify(request), expected, "{request}");
        }
    }

    #[test]
    fn returns_a_bare_string() {
        let output =
            analyze_request(&serde_json::json!({"request": "compute the median of the dataset"}))
                .unwrap();
        assert_eq!(output, Value::String("data_analysis".to_string()));
    }
}
