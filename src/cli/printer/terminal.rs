//! Writing to the terminal. Every line the CLI prints goes through
//! [`outln!`]/[`errln!`], so a closed pipe (`pallet runs --json | head`) ends
//! the program quietly, as SIGPIPE would, instead of a panic; and text from
//! outside (agents, registries, the database, the API) is shown through
//! [`terminal_safe`], so it cannot move the cursor, set the title or forge
//! lines of its own.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

/// Exit status when the reader of stdout/stderr went away (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// `text` with every control character (C0, DEL and C1, newlines too) shown
/// as an escape (`\n`, `\u{1b}`): for text from outside in text output. JSON
/// output stays exact (serde_json escapes C0 controls itself).
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\n' => safe.push_str("\\n"),
            '\r' => safe.push_str("\\r"),
            '\t' => safe.push_str("\\t"),
            control if control.is_control() => {
                let _ = write!(safe, "\\u{{{:x}}}", u32::from(control));
            }
            other => safe.push(other),
        }
    }
    Cow::Owned(safe)
}

/// One line on stdout (what `outln!` calls).
pub fn stdout_line(line: std::fmt::Arguments<'_>) {
    write_line(&mut std::io::stdout().lock(), line);
}

/// One line on stderr (what `errln!` calls).
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    write_line(&mut std::io::stderr().lock(), line);
}

/// Text as it is (already lines) on stderr: the rendered error of main.
pub fn stderr_text(text: &str) {
    write_text(&mut std::io::stderr().lock(), text);
}

/// Text as it is (already lines) on stdout: clap's help and version.
pub fn stdout_text(text: &str) {
    write_text(&mut std::io::stdout().lock(), text);
}

fn write_text(out: &mut impl Write, text: &str) {
    exit_if_closed(out.write_all(text.as_bytes()).and_then(|()| out.flush()));
}

fn write_line(out: &mut impl Write, line: std::fmt::Arguments<'_>) {
    exit_if_closed(
        out.write_fmt(line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush()),
    );
}

/// A reader that went away ends the program quietly; other write errors are
/// ignored, as there is nowhere left to report them.
fn exit_if_closed(written: std::io::Result<()>) {
    if let Err(error) = written
        && error.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        let cases = [
            ("plain text: ✓ café", "plain text: ✓ café"),
            ("\u{1b}]0;pwned\u{7}", "\\u{1b}]0;pwned\\u{7}"),
            ("boom\nerror: forged", "boom\\nerror: forged"),
            ("\u{1b}[2J\r", "\\u{1b}[2J\\r"),
            ("c1 \u{9b}31m del \u{7f}", "c1 \\u{9b}31m del \\u{7f}"),
            ("tab\there", "tab\\there"),
        ];
        for (text, expected) in cases {
            assert_eq!(terminal_safe(text), expected, "{text:?}");
        }
        assert!(matches!(terminal_safe("kept"), Cow::Borrowed(_)));
    }
}
