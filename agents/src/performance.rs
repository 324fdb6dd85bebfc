//! `performance_check`: static checks for slow patterns: nested loops (by
//! indentation for Python, by braces otherwise), string building and list
//! searches inside loops, recursion without memoisation, sleeps.

use regex::Regex;
use serde_json::{Value, json};

use super::code::{self, Language, Scanner};
use super::{SkillError, text_field};

/// What the loop analysis found on one line.
struct LoopLine {
    line: usize,
    /// Loops enclosing the line (a loop header counts itself).
    depth: usize,
    header: bool,
}

pub fn performance_check(input: &Value) -> Result<Value, SkillError> {
    let code = text_field(input, "code");
    let language = Language::of_input(input, code);
    let loops = match language {
        Language::Python => python_loops(code),
        Language::JavaScript | Language::Rust => braced_loops(language, code),
    };
    let lines: Vec<&str> = code.lines().collect();
    let mut findings = Vec::new();
    let mut depth = nested_loops(&loops, &mut findings);
    depth = depth.max(loop_bodies(language, &lines, &loops, &mut findings));
    let recursion = recursion(language, &lines, &mut findings);
    sleeps(&lines, &loops, &mut findings);
    findings.sort_by_key(|finding| finding["line"].as_u64());

    let complexity = complexity(depth, recursion, code);
    let penalty: i64 = findings
        .iter()
        .map(|finding| match finding["severity"].as_str() {
            Some("high") => 25,
            Some("medium") => 12,
            _ => 5,
        })
        .sum();
    let score = (100 - penalty).max(0);
    let summary = if findings.is_empty() {
        format!("no performance problems found; estimated complexity {complexity}")
    } else {
        format!(
            "{} findings; estimated complexity {complexity}",
            findings.len()
        )
    };
    Ok(
        json!({"findings": findings, "complexity_estimate": complexity, "score": score, "summary": summary}),
    )
}

fn finding(rule: &str, severity: &str, line: usize, message: String) -> Value {
    json!({"rule": rule, "severity": severity, "line": line, "message": message})
}

/// Loop depth of every code line by indentation.
fn python_loops(code: &str) -> Vec<LoopLine> {
    let header = Regex::new(r"^\s*(?:async\s+)?(?:for|while)\b").expect("valid pattern");
    let comprehension = Regex::new(r"\bfor\b.+\bin\b").expect("valid pattern");
    let mut open: Vec<usize> = Vec::new();
    let mut result = Vec::new();
    for (number, line) in code::numbered_lines(code) {
        if line.trim().is_empty() || code::is_comment_line(Language::Python, line) {
            continue;
        }
        let indent = code::indentation(line);
        while open.last().is_some_and(|&opened| opened >= indent) {
            open.pop();
        }
        let is_header = header.is_match(line);
        if is_header {
            open.push(indent);
        }
        // `[x for a in b for c in d]` loops without a header line.
        let inline = line
            .matches(" for ")
            .count()
            .saturating_sub(usize::from(is_header));
        let inline = if comprehension.is_match(line) {
            inline
        } else {
            0
        };
        result.push(LoopLine {
            line: number,
            depth: open.len() + inline,
            header: is_header || inline > 0,
        });
    }
    result
}

/// Loop depth of every code line by braces: a loop keyword opens a loop at
/// the next `{`, which closes at the matching `}`.
fn braced_loops(language: Language, code: &str) -> Vec<LoopLine> {
    let header = Regex::new(r"\b(?:for|while|loop)\b|\.forEach\s*\(").expect("valid pattern");
    let mut scanner = Scanner::new(language);
    let mut depth = 0usize;
    let mut open: Vec<usize> = Vec::new();
    let mut pending = false;
    let mut result = Vec::new();
    for (number, line) in code::numbered_lines(code) {
        let characters = scanner.code_characters(line);
        let text: String = characters.iter().collect();
        let is_header = header.is_match(&text);
        pending |= is_header;
        let mut deepest = open.len() + usize::from(is_header && !text.contains('{'));
        for character in characters {
            match character {
                '{' => {
                    if pending {
                        open.push(depth);
                        pending = false;
                    }
                    depth += 1;
                    deepest = deepest.max(open.len());
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    while open.last().is_some_and(|&opened| opened >= depth) {
                        open.pop();
                    }
                }
                _ => {}
            }
        }
        if !text.trim().is_empty() {
            result.push(LoopLine {
                line: number,
                depth: deepest,
                header: is_header,
            });
        }
    }
    result
}

/// Reports loops nested two or more deep; returns the deepest nesting.
fn nested_loops(loops: &[LoopLine], findings: &mut Vec<Value>) -> usize {
    for entry in loops
        .iter()
        .filter(|entry| entry.header && entry.depth >= 2)
    {
        let severity = if entry.depth >= 3 { "high" } else { "medium" };
        let message = format!(
            "loop nested {} deep: O(n^{}) work for inputs of size n",
            entry.depth, entry.depth
        );
        findings.push(finding("nested-loops", severity, entry.line, message));
    }
    loops.iter().map(|entry| entry.depth).max().unwrap_or(0)
}

/// String building and linear searches inside loops; returns the loop depth
/// including those hidden linear costs.
fn loop_bodies(
    language: Language,
    lines: &[&str],
    loops: &[LoopLine],
    findings: &mut Vec<Value>,
) -> usize {
    let concatenation = Regex::new(
        r#"\+=\s*(?:f?["'`]|str\(|String\()|^\s*(\w+)\s*=\s*(\w+)\s*\+\s*(?:f?["'`]|str\()"#,
    )
    .expect("valid pattern");
    let search = match language {
        Language::Python => r"\b(?:if|elif|while)\b.*?\bin\s+(\w+)\b|(\w+)\.index\(",
        Language::JavaScript => r"(\w+)\.(?:includes|indexOf)\(",
        Language::Rust => r"(\w+)\.(?:contains|iter\(\)\.position)\(",
    };
    let search = Regex::new(search).expect("valid pattern");
    let mut deepest = 0;
    for entry in loops
        .iter()
        .filter(|entry| entry.depth >= 1 && !entry.header)
    {
        let line = lines[entry.line - 1];
        if let Some(captures) = concatenation.captures(line) {
            let same = match (captures.get(1), captures.get(2)) {
                (Some(target), Some(source)) => target.as_str() == source.as_str(),
                _ => true,
            };
            if same {
                let message = "string built by concatenation inside a loop copies it every time; collect parts and join".to_string();
                findings.push(finding(
                    "string-concatenation-in-loop",
                    "medium",
                    entry.line,
                    message,
                ));
            }
        }
        let searched = search
            .captures(line)
            .and_then(|captures| captures.get(1).or_else(|| captures.get(2)));
        if let Some(name) = searched.filter(|name| is_list(lines, name.as_str())) {
            let message = format!(
                "'{}' is a list searched inside a loop: O(n) per lookup; use a set",
                name.as_str()
            );
            findings.push(finding(
                "list-membership-in-loop",
                "medium",
                entry.line,
                message,
            ));
            deepest = deepest.max(entry.depth + 1);
        }
    }
    deepest
}

/// Whether the code assigns a list literal (or vector) to this name.
fn is_list(lines: &[&str], name: &str) -> bool {
    let pattern = format!(
        r"\b{}\s*(?::\s*list\b[^=]*)?=\s*(?:\[|list\(|vec!\[|Vec::|new Array)",
        regex::escape(name)
    );
    let assignment = Regex::new(&pattern).expect("escaped pattern is valid");
    lines.iter().any(|line| assignment.is_match(line))
}

/// How recursive code is: none, linear (one self-call, or memoised), or
/// branching without a cache (exponential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Recursion {
    None,
    Linear,
    Branching,
}

/// Reports functions that call themselves without a cache.
fn recursion(language: Language, lines: &[&str], findings: &mut Vec<Value>) -> Recursion {
    let definition = match language {
        Language::Python => r"^(\s*)(?:async\s+)?def\s+(\w+)",
        Language::JavaScript => {
            r"^(\s*)(?:export\s+)?(?:async\s+)?(?:function\s*\*?\s*(\w+)|(?:const|let|var)\s+(\w+)\s*=)"
        }
        Language::Rust => r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?fn\s+(\w+)",
    };
    let definition = Regex::new(definition).expect("valid pattern");
    let mut worst = Recursion::None;
    for (index, line) in lines.iter().enumerate() {
        let Some(captures) = definition.captures(line) else {
            continue;
        };
        let Some(name) = captures
            .get(2)
            .or_else(|| captures.get(3))
            .map(|name| name.as_str())
        else {
            continue;
        };
        let indent = code::indentation(line);
        let body: Vec<&str> = lines[index + 1..]
            .iter()
            .take_while(|body| {
                body.trim().is_empty()
                    || code::indentation(body) > indent
                    || body.trim_start().starts_with('}')
            })
            .copied()
            .collect();
        let call = Regex::new(&format!(r"(?:^|[^.\w]){}\s*\(", regex::escape(name)))
            .expect("escaped pattern is valid");
        let calls: usize = body.iter().map(|body| call.find_iter(body).count()).sum();
        let decorators = lines[..index]
            .iter()
            .rev()
            .take_while(|above| above.trim_start().starts_with('@'));
        let memoised = decorators.chain(body.iter()).any(|text| {
            let lowered = text.to_lowercase();
            lowered.contains("cache") || lowered.contains("memo")
        });
        if calls == 0 {
            continue;
        }
        worst = worst.max(Recursion::Linear);
        if memoised {
            continue;
        }
        if calls >= 2 {
            worst = Recursion::Branching;
            let message = format!(
                "'{name}' calls itself {calls} times without memoisation: exponential time; cache results or iterate"
            );
            findings.push(finding(
                "recursion-without-memoisation",
                "high",
                index + 1,
                message,
            ));
        } else {
            let message = format!(
                "'{name}' is recursive: deep inputs can exhaust the stack; consider a loop"
            );
            findings.push(finding(
                "recursion-without-memoisation",
                "low",
                index + 1,
                message,
            ));
        }
    }
    worst
}

fn sleeps(lines: &[&str], loops: &[LoopLine], findings: &mut Vec<Value>) {
    let sleep =
        Regex::new(r"\btime\.sleep\s*\(|\bthread::sleep\s*\(|\bThread\.sleep\s*\(|\bsleep\s*\(")
            .expect("valid pattern");
    for (index, line) in lines.iter().enumerate() {
        if !sleep.is_match(line) || line.trim_start().starts_with(['#', '/']) {
            continue;
        }
        let in_loop = loops
            .iter()
            .any(|entry| entry.line == index + 1 && entry.depth >= 1);
        let (severity, message) = if in_loop {
            ("medium", "sleep inside a loop: blocks for every iteration")
        } else {
            ("low", "sleep blocks the thread; prefer waiting on an event")
        };
        findings.push(finding("sleep", severity, index + 1, message.to_string()));
    }
}

/// Calls that walk their whole input, so code without loops is still linear.
const LINEAR_CALLS: &[&str] = &[
    ".iter()",
    ".chars()",
    ".map(",
    ".filter(",
    ".reduce(",
    ".fold(",
    "sum(",
    "max(",
    "min(",
    "[::-1]",
    "reversed(",
    ".join(",
    ".reverse()",
    ".every(",
    ".some(",
    "...",
];

fn complexity(depth: usize, recursion: Recursion, code: &str) -> String {
    let linear =
        recursion == Recursion::Linear || LINEAR_CALLS.iter().any(|call| code.contains(call));
    let sorts = ["sorted(", ".sort(", ".sort_by", ".sort_unstable"]
        .iter()
        .any(|call| code.contains(call));
    match depth {
        _ if recursion == Recursion::Branching => "O(2^n)".to_string(),
        0 | 1 if sorts => "O(n log n)".to_string(),
        0 if linear => "O(n)".to_string(),
        0 => "O(1)".to_string(),
        1 => "O(n)".to_string(),
        depth => format!("O(n^{depth})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules_and_lines;

    /// (language, code, expected (rule, line) findings, complexity).
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, u64)], &'a str);

    fn check(code: &str, language: &str) -> Value {
        performance_check(&json!({"code": code, "language": language})).unwrap()
    }

    #[test]
    fn finds_slow_patterns_and_estimates_complexity() {
        let cases: &[Case] = &[
            (
                "python",
                "def f(xs):\n    for a in xs:\n        for b in xs:\n            print(a, b)\n",
                &[("nested-loops", 3)],
                "O(n^2)",
            ),
            (
                "python",
                "for a in xs:\n    pass\nfor b in xs:\n    pass\n",
                &[],
                "O(n)",
            ),
            (
                "python",
                "pairs = [(a, b) for a in xs for b in xs]\n",
                &[("nested-loops", 1)],
                "O(n^2)",
            ),
            (
                "python",
                "s = ''\nfor x in xs:\n    s += str(x)\n",
                &[("string-concatenation-in-loop", 3)],
                "O(n)",
            ),
            (
                "python",
                "seen = []\nfor x in xs:\n    if x in seen:\n        continue\n",
                &[("list-membership-in-loop", 3)],
                "O(n^2)",
            ),
            (
                "python",
                "seen = set()\nfor x in xs:\n    if x in seen:\n        continue\n",
                &[],
                "O(n)",
            ),
            (
                "python",
                "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
                &[("recursion-without-memoisation", 1)],
                "O(2^n)",
            ),
            (
                "python",
                "@functools.cache\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
                &[],
                "O(n)",
            ),
            (
                "python",
                "def reverse(text):\n    return text[::-1]\n",
                &[],
                "O(n)",
            ),
            (
                "python",
                "import time\nwhile True:\n    time.sleep(1)\n",
                &[("sleep", 3)],
                "O(n)",
            ),
            (
                "javascript",
                "function f(xs) {\n  for (const a of xs) {\n    for (const b of xs) {\n      console.log(a, b);\n    }\n  }\n}\n",
                &[("nested-loops", 3)],
                "O(n^2)",
            ),
            (
                "javascript",
                "function f(xs) {\n  for (const a of xs) {\n    g(a);\n  }\n  for (const b of xs) {\n    g(b);\n  }\n}\n",
                &[],
                "O(n)",
            ),
            (
                "rust",
                "fn f(xs: &[u8]) {\n    for a in xs {\n        for b in xs {\n            for c in xs {\n                g(a, b, c);\n            }\n        }\n    }\n}\n",
                &[("nested-loops", 3), ("nested-loops", 4)],
                "O(n^3)",
            ),
            (
                "python",
                "def sort_items(xs):\n    return sorted(xs)\n",
                &[],
                "O(n log n)",
            ),
        ];
        for (language, code, expected, complexity) in cases {
            let output = check(code, language);
            let expected: Vec<(String, u64)> = expected
                .iter()
                .map(|(rule, line)| (rule.to_string(), *line))
                .collect();
            assert_eq!(rules_and_lines(&output), expected, "{code}");
            assert_eq!(output["complexity_estimate"], *complexity, "{code}");
        }
    }

    #[test]
    fn score_drops_with_findings() {
        let clean = check("def f(x):\n    return x\n", "python");
        let nested = check(
            "for a in x:\n    for b in x:\n        for c in x:\n            pass\n",
            "python",
        );
        assert_eq!(clean["score"], 100);
        assert!(nested["score"].as_i64().unwrap() < 70, "{nested}");
    }
}
