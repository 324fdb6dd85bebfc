//! Reading requirements text: the pieces of work it asks for, their function
//! names, the language it names, and the well-known tasks we can implement.

use super::code::Language;

/// What a well-known task's function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A non-negative integer `n`.
    Count,
    /// A piece of text.
    Text,
    /// A list of numbers.
    Numbers,
}

/// A task we recognise and can implement for real.
#[derive(Debug)]
pub struct KnownTask {
    pub function: &'static str,
    /// Words that must all appear (any one of each group).
    pub keywords: &'static [&'static [&'static str]],
    pub summary: &'static str,
    pub input: InputKind,
    /// Test cases as (argument, expected result), JSON literals.
    pub examples: &'static [(&'static str, &'static str)],
}

pub const KNOWN_TASKS: &[KnownTask] = &[
    KnownTask {
        function: "factorial",
        keywords: &[&["factorial"]],
        summary: "Return n! = 1 * 2 * ... * n (0! = 1)",
        input: InputKind::Count,
        examples: &[("0", "1"), ("1", "1"), ("5", "120"), ("10", "3628800")],
    },
    KnownTask {
        function: "fibonacci",
        keywords: &[&["fibonacci"]],
        summary: "Return the n-th Fibonacci number (fibonacci(0) = 0, fibonacci(1) = 1)",
        input: InputKind::Count,
        examples: &[("0", "0"), ("1", "1"), ("2", "1"), ("10", "55")],
    },
    KnownTask {
        function: "is_prime",
        keywords: &[&["prime"]],
        summary: "Return whether n is a prime number",
        input: InputKind::Count,
        examples: &[
            ("0", "false"),
            ("1", "false"),
            ("2", "true"),
            ("17", "true"),
            ("21", "false"),
        ],
    },
    KnownTask {
        function: "is_palindrome",
        keywords: &[&["palindrome"]],
        summary: "Return whether the text reads the same backwards, ignoring case and non-alphanumerics",
        input: InputKind::Text,
        examples: &[
            ("\"Racecar\"", "true"),
            ("\"A man, a plan, a canal: Panama\"", "true"),
            ("\"pallet\"", "false"),
        ],
    },
    KnownTask {
        function: "reverse_string",
        keywords: &[
            &["reverse", "reverses", "reversing", "reversed"],
            &["string", "text", "word", "words"],
        ],
        summary: "Return the text with its characters in reverse order",
        input: InputKind::Text,
        examples: &[
            ("\"\"", "\"\""),
            ("\"abc\"", "\"cba\""),
            ("\"pallet\"", "\"tellap\""),
        ],
    },
    KnownTask {
        function: "sum_list",
        keywords: &[
            &["sum", "sums", "total", "add up"],
            &["list", "array", "numbers", "values"],
        ],
        summary: "Return the sum of a list of numbers",
        input: InputKind::Numbers,
        examples: &[("[]", "0"), ("[1, 2, 3]", "6"), ("[10, -4]", "6")],
    },
    KnownTask {
        function: "find_maximum",
        keywords: &[
            &["maximum", "max", "largest", "biggest"],
            &["list", "array", "numbers", "values"],
        ],
        summary: "Return the largest number of a non-empty list",
        input: InputKind::Numbers,
        examples: &[("[3]", "3"), ("[1, 5, 2]", "5"), ("[-3, -1, -2]", "-1")],
    },
];

/// The known task a piece of requirements text asks for, if any.
pub fn known_task(text: &str) -> Option<&'static KnownTask> {
    let words = words(text);
    let has = |candidate: &str| {
        if candidate.contains(' ') {
            text.to_lowercase().contains(candidate)
        } else {
            words.iter().any(|word| word == candidate)
        }
    };
    KNOWN_TASKS.iter().find(|task| {
        task.keywords
            .iter()
            .all(|group| group.iter().any(|candidate| has(candidate)))
    })
}

/// The known task whose function has this name.
pub fn known_function(function: &str) -> Option<&'static KnownTask> {
    KNOWN_TASKS.iter().find(|task| task.function == function)
}

/// Lowercase words of the text (letters, digits, apostrophes dropped).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|character: char| !character.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// The language the requirements name ("... in Rust", "a JavaScript function").
pub fn language_named_in(text: &str) -> Option<Language> {
    words(text).iter().find_map(|word| match word.as_str() {
        "python" => Some(Language::Python),
        "javascript" | "js" | "node" | "nodejs" => Some(Language::JavaScript),
        "rust" => Some(Language::Rust),
        _ => None,
    })
}

/// Words that say nothing about what to build.
const FILLER: &[&str] = &[
    "a",
    "an",
    "the",
    "that",
    "which",
    "who",
    "to",
    "of",
    "for",
    "from",
    "with",
    "in",
    "on",
    "into",
    "it",
    "its",
    "is",
    "are",
    "be",
    "and",
    "or",
    "then",
    "also",
    "please",
    "can",
    "could",
    "you",
    "i",
    "we",
    "want",
    "need",
    "would",
    "like",
    "should",
    "must",
    "create",
    "write",
    "make",
    "build",
    "implement",
    "develop",
    "code",
    "program",
    "function",
    "functions",
    "method",
    "script",
    "some",
    "given",
    "my",
    "our",
    "using",
    "python",
    "javascript",
    "rust",
    "js",
    "new",
    "simple",
    "small",
    "me",
    "us",
    "will",
    "by",
    "as",
    "all",
    "each",
    "every",
    "number",
    "numbers",
    "calculates",
    "calculate",
    "computes",
    "returns",
    "return",
    "gets",
];

/// Verbs kept in function names even though FILLER would drop them.
const KEEP_VERBS: &[&str] = &["calculate", "compute", "return", "numbers", "number"];

/// The separate pieces of work in compound requirements: split on "and",
/// "then", commas and semicolons.
pub fn clauses(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase().replace(['\n', ';', '.'], ",");
    let mut pieces = Vec::new();
    for part in lowered.split(',') {
        for piece in part
            .split(" and then ")
            .flat_map(|piece| piece.split(" then "))
        {
            pieces.extend(piece.split(" and ").map(|piece| piece.trim().to_string()));
        }
    }
    pieces.retain(|piece| {
        words(piece)
            .iter()
            .any(|word| !FILLER.contains(&word.as_str()))
    });
    if pieces.is_empty() {
        pieces.push(text.trim().to_string());
    }
    pieces
}

/// A snake_case function name for one piece of work: its meaningful words,
/// at most four ("parse a CSV file" -> "parse_csv_file").
pub fn function_name(clause: &str) -> String {
    if let Some(task) = known_task(clause) {
        return task.function.to_string();
    }
    let all = words(clause);
    let mut meaningful: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|word| !FILLER.contains(word))
        .take(4)
        .collect();
    if meaningful.is_empty() {
        meaningful = all
            .iter()
            .map(String::as_str)
            .filter(|word| KEEP_VERBS.contains(word))
            .take(2)
            .collect();
    }
    let name = meaningful.join("_");
    match name.chars().next() {
        None => "process".to_string(),
        Some(first) if first.is_ascii_digit() => format!("step_{name}"),
        Some(_) => name,
    }
}

/// The first letter in upper case, for titles and step names.
pub fn capitalised(text: &str) -> String {
    let mut characters = text.trim().chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_known_tasks() {
        let cases = [
            (
                "Create a function that calculates the factorial of a number",
                Some("factorial"),
            ),
            ("print the first n Fibonacci numbers", Some("fibonacci")),
            ("check whether a number is prime", Some("is_prime")),
            ("reverse a string", Some("reverse_string")),
            ("add up a list of values", Some("sum_list")),
            ("find the largest value in an array", Some("find_maximum")),
            ("reverse the order of rows", None),
            ("parse a CSV file", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                known_task(text).map(|task| task.function),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn splits_compound_requirements() {
        let cases = [
            (
                "parse a CSV file and compute the average",
                vec!["parse a csv file", "compute the average"],
            ),
            (
                "Read logs, count errors; then send a report",
                vec!["read logs", "count errors", "send a report"],
            ),
            (
                "Create a function that calculates the factorial of a number",
                vec!["create a function that calculates the factorial of a number"],
            ),
            ("and", vec!["and"]),
        ];
        for (text, expected) in cases {
            assert_eq!(clauses(text), expected, "{text}");
        }
    }

    #[test]
    fn names_functions() {
        let cases = [
            ("parse a CSV file", "parse_csv_file"),
            ("compute the average", "compute_average"),
            ("calculates the factorial of a number", "factorial"),
            (
                "send the weekly report to all managers by email",
                "send_weekly_report_managers",
            ),
            ("calculate the numbers", "calculate_numbers"),
            ("2 plus 2", "step_2_plus_2"),
            ("!!", "process"),
        ];
        for (clause, expected) in cases {
            assert_eq!(function_name(clause), expected, "{clause}");
        }
    }

    #[test]
    fn finds_the_named_language() {
        let cases = [
            (
                "write a Rust function that reverses a string",
                Some(Language::Rust),
            ),
            ("a node script", Some(Language::JavaScript)),
            ("sum a list", None),
        ];
        for (text, expected) in cases {
            assert_eq!(language_named_in(text), expected, "{text}");
        }
    }
}
