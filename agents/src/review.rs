//! `review_code`: parses the code with the language's own tool when it is
//! installed (python3, node), else checks brackets; counts functions and
//! finds TODOs, stubs, long lines, missing docstrings and missing tests;
//! `strict` also wants a test named after every function, and `min_score`
//! sets the score approval needs (see [`super::refine`]).

use std::io::Write;
use std::process::{Command, Stdio};

use regex::Regex;
use serde_json::{Value, json};

use super::code::{self, Language};
use super::{SkillError, refine, text_field};

const LONG_LINE: usize = 100;
/// Issues of one kind reported one by one before they are summed up.
const REPORTED_PER_KIND: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    fn penalty(self) -> i64 {
        match self {
            Severity::Error => 30,
            Severity::Warning => 12,
            Severity::Info => 3,
        }
    }
}

struct Issue {
    severity: Severity,
    line: Option<usize>,
    message: String,
}

/// A syntax error found by a parser.
#[derive(Debug, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub line: Option<usize>,
    pub message: String,
}

struct FunctionInfo {
    name: String,
    line: usize,
    documented: bool,
    test: bool,
}

pub fn review_code(input: &Value) -> Result<Value, SkillError> {
    let min_score = refine::min_score(input)?;
    let strict = refine::strict(input)?;
    let code = text_field(input, "code");
    let language = Language::of_input(input, code);
    let mut issues = Vec::new();
    let named = input
        .get("language")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if !named.is_empty() && Language::parse(named).is_none() {
        issues.push(Issue {
            severity: Severity::Info,
            line: None,
            message: format!(
                "language '{named}' is not supported; reviewed as {}",
                language.name()
            ),
        });
    }
    let checked_by = check_syntax(language, code, &mut issues);
    let functions = functions(language, code);
    let todos = markers(code, &mut issues);
    let long_lines = long_lines(code, &mut issues);
    report_functions(&functions, code, language, &mut issues);
    if strict {
        report_untested(&functions, &mut issues);
    }

    let penalty: i64 = issues.iter().map(|issue| issue.severity.penalty()).sum();
    let score = (100 - penalty).max(0);
    let count = |severity| {
        issues
            .iter()
            .filter(|issue| issue.severity == severity)
            .count()
    };
    let errors = count(Severity::Error);
    let needed = min_score.unwrap_or(refine::DEFAULT_MIN_SCORE);
    let approved = errors == 0 && score >= needed;
    // The threshold is said only when the input set it, so the default
    // review reads as it always did.
    let needs = match min_score {
        Some(needed) => format!(" (needs {needed})"),
        None => String::new(),
    };
    let summary = format!(
        "{}: quality score {score}{needs}, {errors} errors, {} warnings, {} notes ({}, {} functions, syntax checked by {checked_by})",
        if approved { "approved" } else { "not approved" },
        count(Severity::Warning),
        count(Severity::Info),
        language.name(),
        functions.len(),
    );
    Ok(json!({
        "approved": approved,
        "quality_score": score,
        "language": language.name(),
        "issues": issues.iter().map(|issue| {
            let mut entry = json!({"severity": issue.severity.name(), "message": issue.message});
            if let Some(line) = issue.line {
                entry["line"] = json!(line);
            }
            entry
        }).collect::<Vec<_>>(),
        "summary": summary,
        "metrics": {
            "lines": code.lines().count(),
            "functions": functions.len(),
            "documented_functions": functions.iter().filter(|function| function.documented).count(),
            "test_functions": functions.iter().filter(|function| function.test).count(),
            "todos": todos,
            "long_lines": long_lines,
            "syntax_checked_by": checked_by,
        },
    }))
}

/// Runs the language's parser when installed, else the bracket check;
/// returns what checked the syntax.
fn check_syntax(language: Language, code: &str, issues: &mut Vec<Issue>) -> &'static str {
    if code.trim().is_empty() {
        issues.push(Issue {
            severity: Severity::Error,
            line: None,
            message: "the code is empty".to_string(),
        });
        return "nothing";
    }
    let parsed =
        match language {
            Language::Python => parse_with("python3", &["-c", PYTHON_PARSER], code)
                .map(|problem| ("python3", problem)),
            Language::JavaScript => parse_with("node", &["-e", JAVASCRIPT_PARSER], code)
                .map(|problem| ("node", problem)),
            // rustc expands built-in macros while parsing (`include_str!`,
            // `env!`), which would leak the agent's files and environment
            // into the review, so Rust gets the bracket check only.
            Language::Rust => None,
        };
    let (checker, problem) = parsed.unwrap_or_else(|| {
        let problem = code::check_brackets(language, code).map(|problem| SyntaxProblem {
            line: Some(problem.line),
            message: problem.message,
        });
        ("bracket balance", problem)
    });
    if let Some(problem) = problem {
        issues.push(Issue {
            severity: Severity::Error,
            line: problem.line,
            message: format!("syntax error: {}", problem.message),
        });
    }
    checker
}

const PYTHON_PARSER: &str = "import ast, json, sys
try:
    ast.parse(sys.stdin.read())
except SyntaxError as error:
    print(json.dumps({'line': error.lineno, 'message': error.msg}))
";

const JAVASCRIPT_PARSER: &str = "const vm = require('vm');
const source = require('fs').readFileSync(0, 'utf8');
try { new vm.Script(source, { filename: 'input.js' }); } catch (error) {
  if (!/^\\s*(import|export)\\b/m.test(source)) {
    const match = /input\\.js:(\\d+)/.exec(error.stack);
    console.log(JSON.stringify({ line: match ? Number(match[1]) : null, message: error.message }));
  }
}
";

/// Feeds the code to a parser program; None when the program is not
/// installed or does not answer as expected.
pub fn parse_with(program: &str, arguments: &[&str], code: &str) -> Option<Option<SyntaxProblem>> {
    let mut child = Command::new(program)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(code.as_bytes()));
    let output = child.wait_with_output().ok()?;
    if !output.status.success() || matches!(written, Some(Err(_))) {
        return None;
    }
    let answer = String::from_utf8_lossy(&output.stdout);
    if answer.trim().is_empty() {
        return Some(None);
    }
    let problem: Value = serde_json::from_str(answer.trim()).ok()?;
    Some(Some(SyntaxProblem {
        line: problem["line"].as_u64().map(|line| line as usize),
        message: problem["message"].as_str().unwrap_or("unknown").to_string(),
    }))
}

fn functions(language: Language, code: &str) -> Vec<FunctionInfo> {
    let pattern = match language {
        Language::Python => r"^\s*(?:async\s+)?def\s+(\w+)",
        Language::JavaScript => {
            r"^\s*(?:export\s+)?(?:async\s+)?(?:function\s*\*?\s*(\w+)|(?:const|let|var)\s+(\w+)\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>))"
        }
        Language::Rust => {
            r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)"
        }
    };
    let pattern = Regex::new(pattern).expect("function patterns are valid");
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(captures) = pattern.captures(line) else {
            continue;
        };
        let Some(name) = captures.get(1).or_else(|| captures.get(2)) else {
            continue;
        };
        let name = name.as_str().to_string();
        let attributes = attributes_above(&lines, index);
        found.push(FunctionInfo {
            test: name.starts_with("test")
                || attributes
                    .iter()
                    .any(|attribute| attribute.contains("test")),
            documented: documented(language, &lines, index),
            line: index + 1,
            name,
        });
    }
    found
}

/// Rust attribute lines (`#[test]`) directly above a line.
fn attributes_above<'a>(lines: &[&'a str], index: usize) -> Vec<&'a str> {
    lines[..index]
        .iter()
        .rev()
        .map(|line| line.trim())
        .take_while(|line| line.starts_with("#["))
        .collect()
}

/// A docstring below the header (Python) or a comment above it.
fn documented(language: Language, lines: &[&str], index: usize) -> bool {
    let above = lines[..index]
        .iter()
        .rev()
        .map(|line| line.trim())
        .find(|line| !line.is_empty() && !line.starts_with("#[") && !line.starts_with('@'));
    let commented_above =
        above.is_some_and(|line| code::is_comment_line(language, line) || line.ends_with("*/"));
    if language != Language::Python {
        return commented_above;
    }
    // The header may span lines; the docstring follows the line ending in ':'.
    let header_end = (index..lines.len())
        .find(|&line| {
            lines[line]
                .split('#')
                .next()
                .unwrap_or("")
                .trim_end()
                .ends_with(':')
        })
        .unwrap_or(index);
    let below = lines[header_end + 1..]
        .iter()
        .map(|line| line.trim())
        .find(|line| !line.is_empty());
    let docstring = below.is_some_and(|line| {
        ["\"\"\"", "'''", "r\"\"\"", "\"", "'"]
            .iter()
            .any(|quote| line.starts_with(quote))
    });
    docstring || commented_above
}

/// TODO/FIXME markers and unimplemented stubs; returns the marker count.
fn markers(code: &str, issues: &mut Vec<Issue>) -> usize {
    let todo = Regex::new(r"\b(TODO|FIXME|XXX|HACK)\b").expect("valid pattern");
    let stub = Regex::new(r"NotImplementedError|\btodo!\(|\bunimplemented!\(|not implemented")
        .expect("valid pattern");
    let mut count = 0;
    for (number, line) in code::numbered_lines(code) {
        if let Some(found) = todo.find(line) {
            count += 1;
            let note = line[found.start()..].trim();
            issues.push(Issue {
                severity: Severity::Warning,
                line: Some(number),
                message: format!("unfinished work: {note}"),
            });
        } else if stub.is_match(line)
            && !line.trim_start().starts_with("except")
            && !line.contains("assert")
        {
            issues.push(Issue {
                severity: Severity::Warning,
                line: Some(number),
                message: "unimplemented stub".to_string(),
            });
        }
    }
    count
}

fn long_lines(code: &str, issues: &mut Vec<Issue>) -> usize {
    let long: Vec<(usize, usize)> = code::numbered_lines(code)
        .map(|(number, line)| (number, line.chars().count()))
        .filter(|(_, length)| *length > LONG_LINE)
        .collect();
    for (number, length) in long.iter().take(REPORTED_PER_KIND) {
        issues.push(Issue {
            severity: Severity::Info,
            line: Some(*number),
            message: format!("line is {length} characters long (limit {LONG_LINE})"),
        });
    }
    if long.len() > REPORTED_PER_KIND {
        let more = long.len() - REPORTED_PER_KIND;
        issues.push(Issue {
            severity: Severity::Info,
            line: None,
            message: format!("{more} more lines over {LONG_LINE} characters"),
        });
    }
    long.len()
}

fn report_functions(
    functions: &[FunctionInfo],
    code: &str,
    language: Language,
    issues: &mut Vec<Issue>,
) {
    if functions.is_empty() && !code.trim().is_empty() {
        issues.push(Issue {
            severity: Severity::Info,
            line: None,
            message: "no functions found".to_string(),
        });
    }
    let undocumented: Vec<&FunctionInfo> = functions
        .iter()
        .filter(|function| !function.documented && !function.test && function.name != "main")
        .collect();
    for function in undocumented.iter().take(REPORTED_PER_KIND) {
        let what = if language == Language::Python {
            "docstring"
        } else {
            "doc comment"
        };
        issues.push(Issue {
            severity: Severity::Info,
            line: Some(function.line),
            message: format!("function '{}' has no {what}", function.name),
        });
    }
    if undocumented.len() > REPORTED_PER_KIND {
        let more = undocumented.len() - REPORTED_PER_KIND;
        issues.push(Issue {
            severity: Severity::Info,
            line: None,
            message: format!("{more} more functions without documentation"),
        });
    }
    let framework_tests = ["describe(", "it(", "test(", "unittest", "#[test]", "assert"];
    let has_tests = functions.iter().any(|function| function.test)
        || framework_tests.iter().any(|marker| code.contains(marker));
    if !functions.is_empty() && !has_tests {
        issues.push(Issue {
            severity: Severity::Warning,
            line: None,
            message: "no tests found".to_string(),
        });
    }
}

/// The strict review: a warning per function without a test of its own.
fn report_untested(functions: &[FunctionInfo], issues: &mut Vec<Issue>) {
    let named: Vec<(&str, bool)> = functions
        .iter()
        .map(|function| (function.name.as_str(), function.test))
        .collect();
    let untested = refine::untested(&named);
    for &name in untested.iter().take(REPORTED_PER_KIND) {
        let line = functions
            .iter()
            .find(|function| function.name == name)
            .map(|function| function.line);
        issues.push(Issue {
            severity: Severity::Warning,
            line,
            message: refine::untested_message(name),
        });
    }
    if untested.len() > REPORTED_PER_KIND {
        let more = untested.len() - REPORTED_PER_KIND;
        issues.push(Issue {
            severity: Severity::Warning,
            line: None,
            message: format!("{more} more functions without a test of their own"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(code: &str, language: &str) -> Value {
        review_code(&json!({"code": code, "language": language})).unwrap()
    }

    fn python_installed() -> bool {
        Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    }

    const GOOD_PYTHON: &str = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\ndef test_add():\n    assert add(1, 2) == 3\n";

    #[test]
    fn approves_clean_code_and_counts_functions() {
        let output = review(GOOD_PYTHON, "python");
        assert_eq!(output["approved"], true, "{output}");
        assert_eq!(output["quality_score"], 100, "{output}");
        assert_eq!(output["metrics"]["functions"], 2);
        assert_eq!(output["metrics"]["test_functions"], 1);
    }

    #[test]
    fn finds_problems_on_their_lines() {
        let long = format!("x = '{}'\n", "a".repeat(120));
        let cases: Vec<(&str, String, &str, Option<usize>)> = vec![
            (
                "python",
                "def f(:\n    pass\n".to_string(),
                "syntax error",
                Some(1),
            ),
            (
                "javascript",
                "function f() {\n  return 1;\n}}\n".to_string(),
                "syntax error",
                Some(3),
            ),
            (
                "rust",
                "fn f() {\n    (1, 2]\n}\n".to_string(),
                "syntax error",
                Some(2),
            ),
            (
                "python",
                "def f():\n    \"\"\"Doc.\"\"\"\n    # TODO: handle zero\n    return 1\n"
                    .to_string(),
                "unfinished work: TODO",
                Some(3),
            ),
            (
                "python",
                "def f():\n    \"\"\"Doc.\"\"\"\n    raise NotImplementedError('f')\n".to_string(),
                "unimplemented stub",
                Some(3),
            ),
            ("python", long, "characters long", Some(1)),
            (
                "python",
                "def f():\n    return 1\n".to_string(),
                "has no docstring",
                Some(1),
            ),
            (
                "python",
                "def f():\n    \"\"\"Doc.\"\"\"\n    return 1\n".to_string(),
                "no tests found",
                None,
            ),
            (
                "rust",
                "/// Doc.\nfn f() {}\n\n#[test]\nfn checks() {}\n".to_string(),
                "",
                None,
            ),
        ];
        for (language, code, expected, line) in cases {
            let output = review(&code, language);
            let issues = output["issues"].as_array().unwrap();
            if expected.is_empty() {
                assert!(issues.is_empty(), "{code}: {output}");
                continue;
            }
            let issue = issues
                .iter()
                .find(|issue| issue["message"].as_str().unwrap().contains(expected))
                .unwrap_or_else(|| panic!("{code}: no '{expected}' in {output}"));
            assert_eq!(
                issue["line"].as_u64().map(|line| line as usize),
                line,
                "{code}"
            );
        }
    }

    #[test]
    fn python_syntax_errors_come_from_python_when_installed() {
        if !python_installed() {
            return;
        }
        let output = review(
            "def ok():\n    \"\"\"Doc.\"\"\"\n    return (1 +\n\nprint('x'\n",
            "python",
        );
        assert_eq!(output["metrics"]["syntax_checked_by"], "python3");
        assert_eq!(output["approved"], false);
        let parsed = parse_with("python3", &["-c", PYTHON_PARSER], "x = 1\n").unwrap();
        assert_eq!(parsed, None);
    }

    #[test]
    fn an_unsupported_language_is_noted() {
        let output = review(GOOD_PYTHON, "cobol");
        assert_eq!(
            output["issues"][0]["message"],
            "language 'cobol' is not supported; reviewed as python"
        );
    }

    #[test]
    fn rust_code_is_never_compiled() {
        let secret = format!("pallet-review-secret-{}", uuid::Uuid::new_v4());
        let file = std::env::temp_dir().join(format!("{}.txt", uuid::Uuid::new_v4()));
        std::fs::write(&file, &secret).unwrap();
        let leaking = format!("compile_error!(include_str!({:?}));", file.display());
        let output = review(&leaking, "rust");
        std::fs::remove_file(&file).unwrap();
        assert!(!output.to_string().contains(&secret), "{output}");
        assert_eq!(output["metrics"]["syntax_checked_by"], "bracket balance");

        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let output = review("compile_error!(include_str!(\"/etc/hostname\"));", "rust");
        if !hostname.trim().is_empty() {
            assert!(!output.to_string().contains(hostname.trim()), "{output}");
        }
        let path = std::env::var("PATH").unwrap_or_default();
        if path.len() > 8 {
            let output = review("compile_error!(env!(\"PATH\"));", "rust");
            assert!(!output.to_string().contains(&path), "{output}");
        }
    }

    #[test]
    fn empty_code_is_an_error() {
        let output = review("  \n", "");
        assert_eq!(output["approved"], false);
        assert_eq!(output["issues"][0]["message"], "the code is empty");
    }

    const VALIDATED_PYTHON: &str = "def validate_input(n):\n    \"\"\"Doc.\"\"\"\n    return n\n\n\ndef double(n):\n    \"\"\"Doc.\"\"\"\n    return 2 * validate_input(n)\n\n\ndef test_double():\n    assert double(2) == 4\n";

    #[test]
    fn strict_reviews_want_a_test_per_function_and_min_score_sets_the_bar() {
        let plain = review(VALIDATED_PYTHON, "python");
        assert_eq!(plain["quality_score"], 100, "{plain}");
        assert_eq!(plain["issues"], json!([]));

        let strict = |extra: Value| {
            let mut input = json!({"code": VALIDATED_PYTHON, "language": "python", "strict": true});
            input
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            review_code(&input).unwrap()
        };
        let output = strict(json!({}));
        assert_eq!(
            output["issues"],
            json!([{"severity": "warning", "line": 1, "message": "function 'validate_input' has no test of its own"}])
        );
        assert_eq!(output["quality_score"], 88);
        assert_eq!(output["approved"], true, "the default bar is 70");
        assert!(
            output["summary"]
                .as_str()
                .unwrap()
                .starts_with("approved: quality score 88, ")
        );

        let output = strict(json!({"min_score": 90}));
        assert_eq!(output["approved"], false, "{output}");
        let summary = output["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("not approved: quality score 88 (needs 90), 0 errors"),
            "{summary}"
        );

        let output = review_code(&json!({"code": GOOD_PYTHON, "min_score": 100})).unwrap();
        assert_eq!(output["approved"], true, "{output}");
        let output = review_code(&json!({"code": "def f(:\n", "min_score": 0})).unwrap();
        assert_eq!(output["approved"], false, "errors are never approved");

        let error = review_code(&json!({"code": GOOD_PYTHON, "min_score": 101})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input for skill 'review_code': min_score must be an integer from 0 to 100, got 101"
        );
    }

    #[test]
    fn strict_reviews_bound_their_reports() {
        let mut code = String::new();
        for index in 0..8 {
            code.push_str(&format!(
                "def f{index}():\n    \"\"\"Doc.\"\"\"\n    return {index}\n\n\n"
            ));
        }
        code.push_str("def test_other():\n    assert f0() == 0\n");
        let output = review_code(&json!({"code": code, "strict": true})).unwrap();
        let messages: Vec<&str> = output["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|issue| issue["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert_eq!(messages[5], "3 more functions without a test of their own");
    }
}
