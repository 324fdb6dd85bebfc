//! Shared reading of source code: which language it is, which lines are
//! comments, how deep the brackets go. Heuristics, not parsers: the checks
//! built on them must be cheap and work on code that does not compile.

use super::SkillError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    JavaScript,
    Rust,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::Rust => "rust",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Language::Python => "py",
            Language::JavaScript => "js",
            Language::Rust => "rs",
        }
    }

    /// Parses a language name as users write it ("py", "JS", "Node.js" ...).
    pub fn parse(name: &str) -> Option<Language> {
        match name.trim().to_lowercase().as_str() {
            "python" | "python3" | "py" => Some(Language::Python),
            "javascript" | "js" | "node" | "nodejs" | "node.js" => Some(Language::JavaScript),
            "rust" | "rs" => Some(Language::Rust),
            _ => None,
        }
    }

    /// The language an optional input field asks for: absent or blank means
    /// "not given"; an unknown name is an error.
    pub fn from_input(name: Option<&str>) -> Result<Option<Language>, SkillError> {
        match name.map(str::trim).filter(|name| !name.is_empty()) {
            None => Ok(None),
            Some(name) => {
                Language::parse(name)
                    .map(Some)
                    .ok_or_else(|| SkillError::UnsupportedLanguage {
                        language: name.to_string(),
                    })
            }
        }
    }

    /// Guesses the language of a piece of code; Python when nothing points elsewhere.
    pub fn detect(code: &str) -> Language {
        let rust = [
            "fn ",
            "let mut ",
            "impl ",
            "pub fn",
            "use std::",
            "-> Result<",
            "println!",
        ];
        let javascript = [
            "function ",
            "const ",
            "=> ",
            "console.log",
            "require(",
            "let ",
            "===",
            "module.exports",
        ];
        let python = [
            "def ", "import ", "elif ", "self.", "print(", "None", "__name__",
        ];
        let count = |markers: &[&str]| {
            markers
                .iter()
                .filter(|marker| code.contains(*marker))
                .count()
        };
        let scores = [
            (count(&python), Language::Python),
            (count(&rust), Language::Rust),
            (count(&javascript), Language::JavaScript),
        ];
        let best = scores.iter().max_by_key(|(score, _)| *score).copied();
        match best {
            Some((score, language)) if score > 0 => language,
            _ => Language::Python,
        }
    }

    /// The language of a code input: the `language` field when given, else detected.
    pub fn of_input(input: &serde_json::Value, code: &str) -> Language {
        let named = input.get("language").and_then(|value| value.as_str());
        named
            .and_then(Language::parse)
            .unwrap_or_else(|| Language::detect(code))
    }

    fn line_comment(self) -> &'static str {
        match self {
            Language::Python => "#",
            Language::JavaScript | Language::Rust => "//",
        }
    }
}

/// True when the line holds only a comment (or a block comment's continuation).
pub fn is_comment_line(language: Language, line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with(language.line_comment())
        || (language != Language::Python && (trimmed.starts_with("/*") || trimmed.starts_with('*')))
}

/// The number of leading spaces (a tab counts as four).
pub fn indentation(line: &str) -> usize {
    line.chars()
        .take_while(|character| character.is_whitespace())
        .map(|character| if character == '\t' { 4 } else { 1 })
        .sum()
}

/// Lines with their 1-based numbers.
pub fn numbered_lines(code: &str) -> impl Iterator<Item = (usize, &str)> {
    code.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
}

/// An unbalanced bracket: its line and what went wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct BracketProblem {
    pub line: usize,
    pub message: String,
}

/// Checks that (), [] and {} balance, skipping strings and comments.
pub fn check_brackets(language: Language, code: &str) -> Option<BracketProblem> {
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut scanner = Scanner::new(language);
    for (number, line) in numbered_lines(code) {
        for character in scanner.code_characters(line) {
            match character {
                '(' | '[' | '{' => open.push((character, number)),
                ')' | ']' | '}' => {
                    let expected = match character {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    match open.pop() {
                        Some((opened, _)) if opened == expected => {}
                        Some((opened, opened_line)) => {
                            return Some(BracketProblem {
                                line: number,
                                message: format!(
                                    "'{character}' closes '{opened}' opened on line {opened_line}"
                                ),
                            });
                        }
                        None => {
                            return Some(BracketProblem {
                                line: number,
                                message: format!("'{character}' has no matching opening bracket"),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
    open.pop().map(|(opened, line)| BracketProblem {
        line,
        message: format!("'{opened}' is never closed"),
    })
}

/// Walks code line by line, yielding only the characters outside strings and
/// comments; block comments and triple-quoted strings may span lines.
pub struct Scanner {
    language: Language,
    in_block_comment: bool,
    in_triple_string: Option<char>,
}

impl Scanner {
    pub fn new(language: Language) -> Scanner {
        Scanner {
            language,
            in_block_comment: false,
            in_triple_string: None,
        }
    }

    pub fn code_characters(&mut self, line: &str) -> Vec<char> {
        let characters: Vec<char> = line.chars().collect();
        let mut kept = Vec::new();
        let mut index = 0;
        while index < characters.len() {
            let rest = &characters[index..];
            if self.in_block_comment {
                if rest.starts_with(&['*', '/']) {
                    self.in_block_comment = false;
                    index += 2;
                } else {
                    index += 1;
                }
                continue;
            }
            if let Some(quote) = self.in_triple_string {
                if rest.starts_with(&[quote, quote, quote]) {
                    self.in_triple_string = None;
                    index += 3;
                } else {
                    index += 1;
                }
                continue;
            }
            let character = rest[0];
            match (self.language, character) {
                (Language::Python, '#') => break,
                (Language::JavaScript | Language::Rust, '/') if rest.get(1) == Some(&'/') => break,
                (Language::JavaScript | Language::Rust, '/') if rest.get(1) == Some(&'*') => {
                    self.in_block_comment = true;
                    index += 2;
                }
                (Language::Python, '"' | '\'')
                    if rest.starts_with(&[character, character, character]) =>
                {
                    self.in_triple_string = Some(character);
                    index += 3;
                }
                (Language::Rust, '\'') if !is_rust_char_literal(rest) => index += 1,
                (_, '"' | '\'' | '`') => index = skip_string(&characters, index),
                _ => {
                    kept.push(character);
                    index += 1;
                }
            }
        }
        kept
    }
}

/// In Rust a quote starts a char literal ('x', '\n') or a lifetime ('a).
fn is_rust_char_literal(rest: &[char]) -> bool {
    rest.get(1) == Some(&'\\') || rest.get(2) == Some(&'\'')
}

/// The index after the string that starts at `start` (or the line's end).
fn skip_string(characters: &[char], start: usize) -> usize {
    let quote = characters[start];
    let mut index = start + 1;
    while index < characters.len() {
        match characters[index] {
            '\\' => index += 2,
            character if character == quote => return index + 1,
            _ => index += 1,
        }
    }
    characters.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_languages() {
        let cases = [
            ("def f(x):\n    return x\n", Language::Python),
            ("fn main() {\n    let mut x = 1;\n}\n", Language::Rust),
            (
                "function f(x) {\n  return x === 1;\n}\n",
                Language::JavaScript,
            ),
            ("", Language::Python),
        ];
        for (code, expected) in cases {
            assert_eq!(Language::detect(code), expected, "{code}");
        }
    }

    #[test]
    fn parses_language_names() {
        let cases = [
            ("Python", Some(Language::Python)),
            ("JS", Some(Language::JavaScript)),
            ("rust", Some(Language::Rust)),
            ("go", None),
        ];
        for (name, expected) in cases {
            assert_eq!(Language::parse(name), expected, "{name}");
        }
        assert!(Language::from_input(Some("cobol")).is_err());
        assert_eq!(Language::from_input(Some(" ")).unwrap(), None);
    }

    #[test]
    fn checks_brackets_outside_strings_and_comments() {
        let cases = [
            (Language::Python, "print('(')\nx = [1, 2]  # )\n", None),
            (Language::Python, "x = (1,\n     2\n", Some(1)),
            (Language::Python, "s = \"\"\"\n)\n\"\"\"\n", None),
            (
                Language::JavaScript,
                "function f() {\n  return `}`; /* { */\n}\n",
                None,
            ),
            (
                Language::JavaScript,
                "function f() {\n  return 1;\n}}\n",
                Some(3),
            ),
            (
                Language::Rust,
                "fn f<'a>(x: &'a str) -> char {\n    '{'\n}\n",
                None,
            ),
            (Language::Rust, "fn f() {\n    (1, 2]\n}\n", Some(2)),
        ];
        for (language, code, expected) in cases {
            let line = check_brackets(language, code).map(|problem| problem.line);
            assert_eq!(line, expected, "{code}");
        }
    }

    #[test]
    fn measures_indentation() {
        assert_eq!(indentation("    x"), 4);
        assert_eq!(indentation("\tx"), 4);
        assert_eq!(indentation("x"), 0);
    }
}
