//! `security_scan`: line-based static checks for dangerous patterns. Each
//! rule is a regular expression; comment lines are skipped.

use regex::Regex;
use serde_json::{Value, json};

use super::code::{self, Language};
use super::{SkillError, text_field};

/// (rule id, severity, pattern, message).
const RULES: &[(&str, &str, &str, &str)] = &[
    (
        "eval",
        "high",
        r"(?:^|[^.\w])eval\s*\(",
        "eval() runs arbitrary code; parse the data instead (e.g. ast.literal_eval, JSON.parse)",
    ),
    (
        "exec",
        "high",
        r"(?:^|[^.\w])exec\s*\(",
        "exec() runs arbitrary code",
    ),
    (
        "os-system",
        "high",
        r"\bos\.(?:system|popen)\s*\(",
        "os.system/os.popen run a shell; use subprocess.run with an argument list",
    ),
    (
        "shell-true",
        "high",
        r"\bshell\s*=\s*True\b",
        "subprocess with shell=True allows shell injection; pass an argument list",
    ),
    (
        "child-process",
        "high",
        r"\bchild_process\b.*\bexec(?:Sync)?\s*\(|\bexecSync\s*\(",
        "child_process exec runs a shell; use execFile/spawn with an argument list",
    ),
    (
        "shell-command",
        "medium",
        r#"Command::new\(\s*"(?:sh|bash|cmd)"\s*\)"#,
        "a command run through a shell: make sure no input reaches its script",
    ),
    (
        "function-constructor",
        "high",
        r"\bnew\s+Function\s*\(",
        "new Function() compiles arbitrary code from a string",
    ),
    (
        "pickle",
        "high",
        r"\b(?:c?[Pp]ickle|marshal|shelve)\.loads?\s*\(",
        "unpickling untrusted data runs arbitrary code",
    ),
    (
        "yaml-load",
        "high",
        r"\byaml\.(?:load|load_all)\s*\(",
        "yaml.load without SafeLoader can build arbitrary objects; use yaml.safe_load",
    ),
    (
        "hardcoded-secret",
        "high",
        r#"(?i)\b\w*(?:password|passwd|secret|api_?key|apikey|access_?token|auth_?token|private_?key)\w*["']?\s*[:=]\s*["'][^"'\s]{4,}["']"#,
        "hard-coded secret; read it from the environment or a secret store",
    ),
    (
        "aws-key",
        "high",
        r"\bAKIA[0-9A-Z]{16}\b",
        "hard-coded AWS access key id",
    ),
    (
        "sql-injection",
        "high",
        r#"(?i)(?:\b(?:select\s.+\sfrom|insert\s+into|update\s+\w+\s+set|delete\s+from)\b.*(?:["']\s*(?:\+|%)|\.format\(|\$\{|\{\w*\}))|(?:\bf["'](?:select|insert|update|delete)\b)"#,
        "SQL built from strings allows SQL injection; use query parameters",
    ),
    (
        "inner-html",
        "medium",
        r"\.(?:innerHTML|outerHTML)\s*=|\bdocument\.write\s*\(|dangerouslySetInnerHTML",
        "writing HTML from strings allows cross-site scripting; use textContent or escape the data",
    ),
    (
        "tls-verify-off",
        "medium",
        r"\bverify\s*=\s*False\b|rejectUnauthorized\s*:\s*false|danger_accept_invalid_certs\s*\(\s*true",
        "TLS certificate checks are disabled",
    ),
    (
        "weak-hash",
        "low",
        r"\bhashlib\.(?:md5|sha1)\s*\(|createHash\(\s*['\x22](?:md5|sha1)['\x22]",
        "MD5/SHA-1 are broken for security uses; use SHA-256 or a password hash",
    ),
    (
        "temp-file",
        "low",
        r"\btempfile\.mktemp\s*\(",
        "tempfile.mktemp is racy; use mkstemp or NamedTemporaryFile",
    ),
    (
        "unsafe-block",
        "low",
        r"\bunsafe\s*\{",
        "unsafe block: check its invariants",
    ),
];

pub fn security_scan(input: &Value) -> Result<Value, SkillError> {
    let code = text_field(input, "code");
    let language = Language::of_input(input, code);
    let findings = scan(language, code);
    let worst = ["high", "medium", "low"].into_iter().find(|severity| {
        findings
            .iter()
            .any(|finding| finding["severity"] == *severity)
    });
    let risk_level = worst.unwrap_or("low");
    let passed = risk_level != "high";
    let summary = if findings.is_empty() {
        "no security problems found".to_string()
    } else {
        let rules: Vec<&str> = findings
            .iter()
            .filter_map(|finding| finding["rule"].as_str())
            .collect();
        format!(
            "{} findings, risk {risk_level}: {}",
            findings.len(),
            rules.join(", ")
        )
    };
    Ok(
        json!({"findings": findings, "risk_level": risk_level, "passed": passed, "summary": summary}),
    )
}

fn scan(language: Language, code: &str) -> Vec<Value> {
    let rules: Vec<(&str, &str, Regex, &str)> = RULES
        .iter()
        .map(|(rule, severity, pattern, message)| {
            (
                *rule,
                *severity,
                Regex::new(pattern).expect("rule patterns are valid"),
                *message,
            )
        })
        .collect();
    let mut findings = Vec::new();
    for (number, line) in code::numbered_lines(code) {
        if code::is_comment_line(language, line) {
            continue;
        }
        for (rule, severity, pattern, message) in &rules {
            if !pattern.is_match(line) || (*rule == "yaml-load" && line.contains("SafeLoader")) {
                continue;
            }
            findings.push(
                json!({"rule": rule, "severity": severity, "line": number, "message": message}),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_and_lines(code: &str) -> Vec<(String, u64)> {
        crate::rules_and_lines(&security_scan(&json!({"code": code})).unwrap())
    }

    #[test]
    fn flags_dangerous_patterns_on_their_lines() {
        let cases: &[(&str, &[(&str, u64)])] = &[
            ("import os\nvalue = eval(text)\n", &[("eval", 2)]),
            ("# eval(text) is dangerous\nx = literal_eval(text)\n", &[]),
            ("exec(code)\nre.exec(text)\n", &[("exec", 1)]),
            ("os.system('rm ' + name)\n", &[("os-system", 1)]),
            (
                "subprocess.run(command, shell=True)\n",
                &[("shell-true", 1)],
            ),
            ("data = pickle.loads(blob)\n", &[("pickle", 1)]),
            (
                "yaml.load(text)\nyaml.load(text, Loader=yaml.SafeLoader)\n",
                &[("yaml-load", 1)],
            ),
            (
                "password = \"hunter22\"\npassword = os.environ['PASSWORD']\n",
                &[("hardcoded-secret", 1)],
            ),
            ("API_KEY = 'sk-123456789'\n", &[("hardcoded-secret", 1)]),
            (
                "cursor.execute(\"SELECT * FROM users WHERE name = '\" + name + \"'\")\n",
                &[("sql-injection", 1)],
            ),
            (
                "cursor.execute(f\"SELECT * FROM users WHERE id = {user_id}\")\n",
                &[("sql-injection", 1)],
            ),
            (
                "cursor.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n",
                &[],
            ),
            ("element.innerHTML = userInput;\n", &[("inner-html", 1)]),
            (
                "const f = new Function(body);\n",
                &[("function-constructor", 1)],
            ),
            (
                "let out = Command::new(\"sh\").arg(\"-c\").arg(script).output();\n",
                &[("shell-command", 1)],
            ),
            (
                "requests.get(url, verify=False)\n",
                &[("tls-verify-off", 1)],
            ),
            ("def add(a, b):\n    return a + b\n", &[]),
        ];
        for (code, expected) in cases {
            let expected: Vec<(String, u64)> = expected
                .iter()
                .map(|(rule, line)| (rule.to_string(), *line))
                .collect();
            assert_eq!(rules_and_lines(code), expected, "{code}");
        }
    }

    #[test]
    fn risk_level_is_the_worst_severity() {
        let cases = [
            ("x = 1\n", "low", true),
            ("hashlib.md5(data)\n", "low", true),
            ("el.innerHTML = html;\n", "medium", true),
            ("eval(x)\nel.innerHTML = html;\n", "high", false),
        ];
        for (code, risk, passed) in cases {
            let output = security_scan(&json!({"code": code})).unwrap();
            assert_eq!(output["risk_level"], risk, "{code}");
            assert_eq!(output["passed"], passed, "{code}");
        }
    }
}
