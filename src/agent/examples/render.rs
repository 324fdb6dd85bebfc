//! Renders a [`Program`] as Python, JavaScript or Rust source. Known tasks get
//! real bodies and tests; the rest get stubs that name their plan step.

use super::build::{Function, Program};
use super::source::Language;
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
    let tests: Vec<String> = program
        .functions
        .iter()
        .map(|function| name(&format!("test_{}", function.name)))
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

/// Python: `def` with docstrings, plain `assert` tests run under `__main__`.
mod python {
    use super::*;

    pub fn header(program: &Program) -> String {
        format!(
            "\"\"\"{}\n\nGenerated by pallet's build agent: one function per plan step.\nRun this file to run its tests.\n\"\"\"\n",
            doc(&program.title)
        )
    }

    pub fn validate(program: &Program) -> String {
        let parameter = parameter(program.input);
        let body = match program.input {
            Some(InputKind::Count) => {
                "    if isinstance(n, bool) or not isinstance(n, int):\n        raise TypeError(f\"expected an integer, got {type(n).__name__}\")\n    if n < 0:\n        raise ValueError(f\"expected a non-negative integer, got {n}\")\n"
            }
            Some(InputKind::Text) => {
                "    if not isinstance(text, str):\n        raise TypeError(f\"expected a string, got {type(text).__name__}\")\n"
            }
            Some(InputKind::Numbers) => {
                "    if not isinstance(numbers, (list, tuple)):\n        raise TypeError(f\"expected a list, got {type(numbers).__name__}\")\n    for value in numbers:\n        if isinstance(value, bool) or not isinstance(value, (int, float)):\n            raise TypeError(f\"expected numbers only, got {value!r}\")\n"
            }
            None => "    if data is None:\n        raise ValueError(\"data is required\")\n",
        };
        format!(
            "\n\ndef validate_input({parameter}):\n{}{body}    return {parameter}\n",
            documentation(
                Language::Python,
                "    ",
                &format!("Validate input: {}", program.validate_description)
            )
        )
    }

    pub fn function(program: &Program, function: &Function) -> String {
        let parameter = parameter(program.input);
        let body = match function.task.map(|task| task.function) {
            Some("factorial") => "    result = 1\n    for factor in range(2, n + 1):\n        result *= factor\n    return result\n".to_string(),
            Some("fibonacci") => "    previous, current = 0, 1\n    for _ in range(n):\n        previous, current = current, previous + current\n    return previous\n".to_string(),
            Some("is_prime") => "    if n < 2:\n        return False\n    divisor = 2\n    while divisor * divisor <= n:\n        if n % divisor == 0:\n            return False\n        divisor += 1\n    return True\n".to_string(),
            Some("is_palindrome") => "    letters = [character.lower() for character in text if character.isalnum()]\n    return letters == letters[::-1]\n".to_string(),
            Some("reverse_string") => "    return text[::-1]\n".to_string(),
            Some("sum_list") => "    return sum(numbers)\n".to_string(),
            Some("find_maximum") => "    if not numbers:\n        raise ValueError(\"expected a non-empty list\")\n    return max(numbers)\n".to_string(),
            _ => format!(
                "    raise NotImplementedError({})\n",
                quoted(&format!("Implement {}: {}", function.name, function.description))
            ),
        };
        format!(
            "\n\ndef {}({parameter}):\n{}    {parameter} = validate_input({parameter})\n{body}",
            function.name,
            documentation(
                Language::Python,
                "    ",
                &format!("Implement {}: {}", function.name, function.description)
            )
        )
    }

    pub fn tests(program: &Program) -> String {
        let mut code = String::new();
        let mut names = Vec::new();
        for function in &program.functions {
            let name = format!("test_{}", function.name);
            let description = format!("Write tests: {}", program.test_description);
            code.push_str(&format!(
                "\n\ndef {name}():\n{}",
                documentation(Language::Python, "    ", &description)
            ));
            code.push_str(&test_body(program, function));
            names.push(name);
        }
        code.push_str("\n\nif __name__ == \"__main__\":\n");
        for name in names {
            code.push_str(&format!("    {name}()\n"));
        }
        code.push_str("    print(\"all tests passed\")\n");
        code
    }

    fn test_body(program: &Program, function: &Function) -> String {
        let name = &function.name;
        let Some(task) = function.task else {
            let sample = sample(program.input);
            return format!(
                "    # TODO: replace with real expectations once {name} is implemented.\n    try:\n        {name}({sample})\n    except NotImplementedError:\n        pass\n"
            );
        };
        let mut body = String::new();
        for (argument, expected) in task.examples {
            body.push_str(&format!(
                "    assert {name}({}) == {}\n",
                literal(argument),
                literal(expected)
            ));
        }
        let invalid = match task.input {
            InputKind::Count => "-1, 1.5, \"3\"",
            InputKind::Text => "None, 42",
            InputKind::Numbers => "None, \"12\", [1, \"2\"]",
        };
        body.push_str(&format!(
            "    for invalid in ({invalid}):\n        try:\n            {name}(invalid)\n        except (TypeError, ValueError):\n            continue\n        raise AssertionError(f\"{name} accepted {{invalid!r}}\")\n"
        ));
        body
    }

    /// A JSON literal as Python source.
    fn literal(json: &str) -> String {
        match json {
            "true" => "True".to_string(),
            "false" => "False".to_string(),
            other => other.to_string(),
        }
    }
}

/// JavaScript (Node): JSDoc comments, `node:assert` tests run when executed directly.
mod javascript {
    use super::*;

    pub fn header(program: &Program) -> String {
        format!(
            "/**\n * {}\n *\n * Generated by pallet's build agent: one function per plan step.\n * Run this file with node to run its tests.\n */\n\"use strict\";\n\nconst assert = require(\"node:assert\");\n",
            doc(&program.title)
        )
    }

    pub fn validate(program: &Program) -> String {
        let parameter = parameter(program.input);
        let body = match program.input {
            Some(InputKind::Count) => {
                "  if (!Number.isInteger(n)) {\n    throw new TypeError(`expected an integer, got ${typeof n}`);\n  }\n  if (n < 0) {\n    throw new RangeError(`expected a non-negative integer, got ${n}`);\n  }\n"
            }
            Some(InputKind::Text) => {
                "  if (typeof text !== \"string\") {\n    throw new TypeError(`expected a string, got ${typeof text}`);\n  }\n"
            }
            Some(InputKind::Numbers) => {
                "  if (!Array.isArray(numbers) || !numbers.every((value) => typeof value === \"number\")) {\n    throw new TypeError(\"expected an array of numbers\");\n  }\n"
            }
            None => {
                "  if (data === undefined || data === null) {\n    throw new TypeError(\"data is required\");\n  }\n"
            }
        };
        format!(
            "\n{}function validateInput({parameter}) {{\n{body}  return {parameter};\n}}\n",
            documentation(
                Language::JavaScript,
                "",
                &format!("Validate input: {}", program.validate_description)
            )
        )
    }

    pub fn function(program: &Program, function: &Function) -> String {
        let parameter = parameter(program.input);
        let name = camel_case(&function.name);
        let body = match function.task.map(|task| task.function) {
            Some("factorial") => "  let result = 1;\n  for (let factor = 2; factor <= n; factor += 1) {\n    result *= factor;\n  }\n  return result;\n".to_string(),
            Some("fibonacci") => "  let previous = 0;\n  let current = 1;\n  for (let index = 0; index < n; index += 1) {\n    [previous, current] = [current, previous + current];\n  }\n  return previous;\n".to_string(),
            Some("is_prime") => "  if (n < 2) {\n    return false;\n  }\n  for (let divisor = 2; divisor * divisor <= n; divisor += 1) {\n    if (n % divisor === 0) {\n      return false;\n    }\n  }\n  return true;\n".to_string(),
            Some("is_palindrome") => "  const letters = text.toLowerCase().replace(/[^a-z0-9]/g, \"\");\n  return letters === [...letters].reverse().join(\"\");\n".to_string(),
            Some("reverse_string") => "  return [...text].reverse().join(\"\");\n".to_string(),
            Some("sum_list") => "  return numbers.reduce((total, value) => total + value, 0);\n".to_string(),
            Some("find_maximum") => "  if (numbers.length === 0) {\n    throw new RangeError(\"expected a non-empty list\");\n  }\n  return Math.max(...numbers);\n".to_string(),
            _ => format!(
                "  throw new Error({});\n",
                quoted(&format!("not implemented: Implement {name}: {}", function.description))
            ),
        };
        format!(
            "\n{}function {name}({parameter}) {{\n  validateInput({parameter});\n{body}}}\n",
            documentation(
                Language::JavaScript,
                "",
                &format!("Implement {name}: {}", function.description)
            )
        )
    }

    pub fn tests(program: &Program) -> String {
        let mut code = String::new();
        let mut names = Vec::new();
        for function in &program.functions {
            let name = camel_case(&format!("test_{}", function.name));
            code.push_str(&format!(
                "\n{}function {name}() {{\n{}}}\n",
                documentation(
                    Language::JavaScript,
                    "",
                    &format!("Write tests: {}", program.test_description)
                ),
                test_body(program, function)
            ));
            names.push(name);
        }
        let mut exported = vec!["validateInput".to_string()];
        exported.extend(
            program
                .functions
                .iter()
                .map(|function| camel_case(&function.name)),
        );
        code.push_str(&format!(
            "\nmodule.exports = {{ {} }};\n\nif (require.main === module) {{\n",
            exported.join(", ")
        ));
        for name in names {
            code.push_str(&format!("  {name}();\n"));
        }
        code.push_str("  console.log(\"all tests passed\");\n}\n");
        code
    }

    fn test_body(program: &Program, function: &Function) -> String {
        let name = camel_case(&function.name);
        let Some(task) = function.task else {
            let sample = sample(program.input);
            return format!(
                "  // TODO: replace with real expectations once {name} is implemented.\n  assert.throws(() => {name}({sample}), /not implemented/);\n"
            );
        };
        let mut body = String::new();
        for (argument, expected) in task.examples {
            body.push_str(&format!(
                "  assert.deepStrictEqual({name}({argument}), {expected});\n"
            ));
        }
        let invalid: &[&str] = match task.input {
            InputKind::Count => &["-1", "1.5", "\"3\""],
            InputKind::Text => &["null", "42"],
            InputKind::Numbers => &["null", "\"12\"", "[1, \"2\"]"],
        };
        for argument in invalid {
            body.push_str(&format!("  assert.throws(() => {name}({argument}));\n"));
        }
        body
    }
}

/// Rust: doc comments, `Result` returns, `#[test]`s; builds with `rustc --test`.
mod rust {
    use super::*;

    pub fn header(program: &Program) -> String {
        format!(
            "//! {}\n//!\n//! Generated by pallet's build agent: one function per plan step.\n//! Run its tests with `rustc --test FILE && ./BINARY`.\n",
            doc(&program.title)
        )
    }

    /// (parameter declaration, validated type) of an input kind.
    fn types(input: Option<InputKind>) -> (&'static str, &'static str) {
        match input {
            Some(InputKind::Count) => ("n: i64", "u64"),
            Some(InputKind::Text) => ("text: &str", "&str"),
            Some(InputKind::Numbers) => ("numbers: &[f64]", "&[f64]"),
            None => ("data: &str", "&str"),
        }
    }

    pub fn validate(program: &Program) -> String {
        let (declaration, validated) = types(program.input);
        let body = match program.input {
            Some(InputKind::Count) => {
                "    u64::try_from(n).map_err(|_| format!(\"expected a non-negative integer, got {n}\"))\n"
            }
            Some(InputKind::Text) => {
                "    // A &str is always valid UTF-8; nothing more to check.\n    Ok(text)\n"
            }
            Some(InputKind::Numbers) => {
                "    match numbers.iter().find(|value| !value.is_finite()) {\n        Some(value) => Err(format!(\"expected finite numbers, got {value}\")),\n        None => Ok(numbers),\n    }\n"
            }
            None => {
                "    if data.trim().is_empty() {\n        return Err(\"data is required\".to_string());\n    }\n    Ok(data)\n"
            }
        };
        format!(
            "\n{}fn validate_input({declaration}) -> Result<{validated}, String> {{\n{body}}}\n",
            documentation(
                Language::Rust,
                "",
                &format!("Validate input: {}", program.validate_description)
            )
        )
    }

    pub fn function(program: &Program, function: &Function) -> String {
        let (declaration, _) = types(program.input);
        let parameter = parameter(program.input);
        let name = &function.name;
        let (output, body) = match function.task.map(|task| task.function) {
            Some("factorial") => ("u64", "    let n = validate_input(n)?;\n    (2..=n)\n        .try_fold(1u64, |product, factor| product.checked_mul(factor))\n        .ok_or_else(|| format!(\"factorial of {n} does not fit in 64 bits\"))\n".to_string()),
            Some("fibonacci") => ("u64", "    let n = validate_input(n)?;\n    let (mut previous, mut current) = (0u64, 1u64);\n    for _ in 0..n {\n        let next = previous\n            .checked_add(current)\n            .ok_or_else(|| format!(\"fibonacci of {n} does not fit in 64 bits\"))?;\n        previous = current;\n        current = next;\n    }\n    Ok(previous)\n".to_string()),
            Some("is_prime") => ("bool", "    let n = validate_input(n)?;\n    if n < 2 {\n        return Ok(false);\n    }\n    let mut divisor = 2;\n    while divisor * divisor <= n {\n        if n % divisor == 0 {\n            return Ok(false);\n        }\n        divisor += 1;\n    }\n    Ok(true)\n".to_string()),
            Some("is_palindrome") => ("bool", "    let text = validate_input(text)?;\n    let letters: Vec<char> = text\n        .chars()\n        .filter(|character| character.is_alphanumeric())\n        .flat_map(char::to_lowercase)\n        .collect();\n    Ok(letters.iter().eq(letters.iter().rev()))\n".to_string()),
            Some("reverse_string") => ("String", "    Ok(validate_input(text)?.chars().rev().collect())\n".to_string()),
            Some("sum_list") => ("f64", "    Ok(validate_input(numbers)?.iter().sum())\n".to_string()),
            Some("find_maximum") => ("f64", "    validate_input(numbers)?\n        .iter()\n        .copied()\n        .reduce(f64::max)\n        .ok_or_else(|| \"expected a non-empty list\".to_string())\n".to_string()),
            _ => ("String", format!(
                "    let _validated = validate_input({parameter})?;\n    todo!({})\n",
                quoted(&format!("Implement {name}: {}", function.description).replace('{', "{{").replace('}', "}}"))
            )),
        };
        format!(
            "\n{}fn {name}({declaration}) -> Result<{output}, String> {{\n{body}}}\n",
            documentation(
                Language::Rust,
                "",
                &format!("Implement {name}: {}", function.description)
            )
        )
    }

    pub fn tests(program: &Program) -> String {
        let mut code = String::from("\nfn main() {\n");
        for function in &program.functions {
            let argument = match function.task {
                Some(task) => argument(task.input, task.examples[0].0),
                None => rust_sample(program.input),
            };
            code.push_str(&format!(
                "    println!(\"{0}: {{:?}}\", {0}({argument}));\n",
                function.name
            ));
        }
        code.push_str("}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n");
        for function in &program.functions {
            code.push_str(&format!(
                "\n{}    #[test]\n    fn test_{}() {{\n{}    }}\n",
                documentation(
                    Language::Rust,
                    "    ",
                    &format!("Write tests: {}", program.test_description)
                ),
                function.name,
                test_body(program, function)
            ));
        }
        code.push_str("}\n");
        code
    }

    fn rust_sample(input: Option<InputKind>) -> String {
        match input {
            Some(InputKind::Numbers) => "&[1.0, 2.0, 3.0]".to_string(),
            other => sample(other).to_string(),
        }
    }

    fn test_body(program: &Program, function: &Function) -> String {
        let name = &function.name;
        let Some(task) = function.task else {
            let sample = rust_sample(program.input);
            return format!(
                "        // TODO: replace with real expectations once {name} is implemented.\n        assert!(std::panic::catch_unwind(|| {name}({sample})).is_err());\n"
            );
        };
        let mut body = String::new();
        for (input, expected) in task.examples {
            body.push_str(&format!(
                "        assert_eq!({name}({}), Ok({}));\n",
                argument(task.input, input),
                expected_value(task.input, task.function, expected)
            ));
        }
        match task.input {
            InputKind::Count => body.push_str(&format!("        assert!({name}(-1).is_err());\n")),
            InputKind::Numbers => {
                body.push_str(&format!("        assert!({name}(&[f64::NAN]).is_err());\n"))
            }
            InputKind::Text => {}
        }
        body
    }

    /// A JSON test argument as a Rust expression of the parameter's type.
    fn argument(input: InputKind, json: &str) -> String {
        match input {
            InputKind::Numbers => format!("&[{}]", floats(json)),
            InputKind::Count | InputKind::Text => json.to_string(),
        }
    }

    fn expected_value(input: InputKind, function: &str, json: &str) -> String {
        match (input, function) {
            (InputKind::Numbers, _) => floats(json),
            (_, "reverse_string") => format!("{json}.to_string()"),
            _ => json.to_string(),
        }
    }

    /// "[1, -2]" or "6" -> "1.0, -2.0" or "6.0".
    fn floats(json: &str) -> String {
        json.trim_matches(['[', ']'])
            .split(',')
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(|value| format!("{value}.0"))
            .collect::<Vec<_>>()
            .join(", ")
    }
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
