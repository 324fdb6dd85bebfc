//! Renders a [`Program`] as Python, JavaScript or Rust source. Known tasks get
//! real bodies and tests; the rest get stubs that name their plan step.

mod javascript;
mod python;
mod rust;

use super::build::{Function, Program};
use super::code::Language;
use super::tasks::InputKind;

pub struct Rendered {
    pub code: String,
    /// Function names as written in the code, validation first.
    pub functions: Vec<String>,
    pub tests: Vec<String>,
}

pub fn render(language: Language, program: &Program) -> Rendered {
    let style = match language {
        Language::Python => &PYTHON,
        Language::JavaScript => &JAVASCRIPT,
        Language::Rust => &RUST,
    };
    let name = |snake: &str| {
        if language == Language::JavaScript {
            camel_case(snake)
        } else {
            snake.to_string()
        }
    };
    let mut functions = vec![name("validate_input")];
    functions.extend(
        program
            .functions
            .iter()
            .map(|function| name(&function.name)),
    );
    let validation = program.test_validation.then(|| name("test_validate_input"));
    let tests: Vec<String> = validation
        .into_iter()
        .chain(
            program
                .functions
                .iter()
                .map(|function| name(&format!("test_{}", function.name))),
        )
        .collect();
    let mut code = (style.header)(program);
    code.push_str(&(style.validate)(program));
    for function in &program.functions {
        code.push_str(&(style.function)(program, function));
    }
    code.push_str(&(style.tests)(program));
    Rendered {
        code,
        functions,
        tests,
    }
}

/// One language's templates.
struct Style {
    header: fn(&Program) -> String,
    validate: fn(&Program) -> String,
    function: fn(&Program, &Function) -> String,
    tests: fn(&Program) -> String,
}

const PYTHON: Style = Style {
    header: python::header,
    validate: python::validate,
    function: python::function,
    tests: python::tests,
};
const JAVASCRIPT: Style = Style {
    header: javascript::header,
    validate: javascript::validate,
    function: javascript::function,
    tests: javascript::tests,
};
const RUST: Style = Style {
    header: rust::header,
    validate: rust::validate,
    function: rust::function,
    tests: rust::tests,
};

/// The parameter name for an input kind.
fn parameter(input: Option<InputKind>) -> &'static str {
    match input {
        Some(InputKind::Count) => "n",
        Some(InputKind::Text) => "text",
        Some(InputKind::Numbers) => "numbers",
        None => "data",
    }
}

/// The description of `validate_input`'s own test.
const VALIDATION_TEST: &str =
    "Test validate_input: valid input passes through, invalid input is rejected";

/// An argument that passes validation, for tests of stubs (Python and JavaScript syntax).
fn sample(input: Option<InputKind>) -> &'static str {
    match input {
        Some(InputKind::Count) => "1",
        Some(InputKind::Numbers) => "[1, 2, 3]",
        Some(InputKind::Text) | None => "\"example input\"",
    }
}

/// Text safe inside a double-quoted string literal of any of the languages.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Text safe inside a doc comment or docstring, on one line.
fn doc(text: &str) -> String {
    text.replace("\"\"\"", "'''")
        .replace("*/", "* /")
        .replace('\n', " ")
}

/// Width that generated documentation wraps at.
const DOC_WIDTH: usize = 88;

/// Words of the text in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// A function's documentation block, indented, in the language's style.
fn documentation(language: Language, indent: &str, text: &str) -> String {
    let width = DOC_WIDTH - indent.len() - 6;
    let lines = wrap(&doc(text), width);
    match language {
        Language::Python if lines.len() <= 1 => format!("{indent}\"\"\"{}\"\"\"\n", lines.join("")),
        Language::Python => {
            let rest: String = lines[1..]
                .iter()
                .map(|line| format!("{indent}{line}\n"))
                .collect();
            format!("{indent}\"\"\"{}\n{rest}{indent}\"\"\"\n", lines[0])
        }
        Language::JavaScript => {
            let body: String = lines
                .iter()
                .map(|line| format!("{indent} * {line}\n"))
                .collect();
            format!("{indent}/**\n{body}{indent} */\n")
        }
        Language::Rust => lines
            .iter()
            .map(|line| format!("{indent}/// {line}\n"))
            .collect(),
    }
}

fn camel_case(snake: &str) -> String {
    let mut result = String::new();
    for (index, part) in snake.split('_').filter(|part| !part.is_empty()).enumerate() {
        if index == 0 {
            result.push_str(part);
        } else {
            result.push_str(&super::tasks::capitalised(part));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_documentation() {
        let cases = [
            (Language::Python, "    \"\"\"Short.\"\"\"\n"),
            (Language::Rust, "    /// Short.\n"),
            (Language::JavaScript, "    /**\n     * Short.\n     */\n"),
        ];
        for (language, expected) in cases {
            assert_eq!(documentation(language, "    ", "Short."), expected);
        }
        let long = "word ".repeat(50);
        for language in [Language::Python, Language::JavaScript, Language::Rust] {
            let block = documentation(language, "    ", &long);
            assert!(block.lines().count() > 2, "{block}");
            assert!(block.lines().all(|line| line.len() <= DOC_WIDTH), "{block}");
        }
    }

    #[test]
    fn converts_names_to_camel_case() {
        let cases = [
            ("reverse_string", "reverseString"),
            ("test_sum_list", "testSumList"),
            ("factorial", "factorial"),
        ];
        for (snake, expected) in cases {
            assert_eq!(camel_case(snake), expected);
        }
    }
}
