//! What a name (or a room name) may be.
//!
//! Owns the naming rules shared by the server, which enforces them, and the client, which checks
//! them first to give a friendlier error. Names are rejected, never repaired: no truncation, no
//! stripping of characters, because the server prints them on its terminal and echoes them to
//! other clients verbatim.

use std::fmt;

/// Longest accepted name, in Unicode scalar values (characters), not bytes.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        chars: usize,
    },
    /// A control character (which includes the ESC of every terminal escape sequence) or a
    /// bidirectional-override character, with its position in characters.
    Forbidden {
        at: usize,
        ch: char,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("is empty"),
            NameError::TooLong { chars } => write!(
                f,
                "is {chars} characters long; the maximum is {MAX_NAME_CHARS}"
            ),
            NameError::Forbidden { at, ch } => write!(
                f,
                "contains the forbidden character U+{:04X} at position {}",
                u32::from(*ch),
                at + 1
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name: 1 to [`MAX_NAME_CHARS`] characters, not only white space, no control
/// characters, no bidirectional overrides. Any other Unicode is welcome.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong { chars });
    }
    match name.chars().enumerate().find(|&(_, c)| forbidden(c)) {
        Some((at, ch)) => Err(NameError::Forbidden { at, ch }),
        None => Ok(()),
    }
}

// Control characters can drive a terminal (ESC sequences, bell, carriage return overwriting a
// line); bidi overrides make a name display as something else ("Trojan Source").
fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character shown as an escape (`\u{1b}`), for printing text that
/// came from the network on a terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(forbidden) {
        text.chars()
            .map(|c| {
                if forbidden(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_unicode_names_pass() {
        for ok in [
            "Alice",
            "Bob",
            "Mary Ann",
            "Zoë",
            "李雷",
            "🦀 crab",
            &"a".repeat(64),
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn empty_and_blank_names_fail() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate("  \u{3000}"), Err(NameError::Empty));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(validate(&"é".repeat(64)), Ok(()));
        assert_eq!(
            validate(&"é".repeat(65)),
            Err(NameError::TooLong { chars: 65 })
        );
    }

    #[test]
    fn escapes_and_controls_are_forbidden() {
        assert_eq!(
            validate("Al\u{1b}[31mice"),
            Err(NameError::Forbidden {
                at: 2,
                ch: '\u{1b}'
            })
        );
        assert!(validate("line\nbreak").is_err());
        assert!(validate("tab\there").is_err());
        assert!(validate("nul\0").is_err());
        assert!(validate("\u{9b}31m").is_err(), "C1 CSI");
        assert!(validate("abc\u{202E}fed").is_err(), "bidi override");
    }

    #[test]
    fn messages_name_the_character_not_the_raw_byte() {
        let e = validate("a\u{1b}").unwrap_err().to_string();
        assert_eq!(e, "contains the forbidden character U+001B at position 2");
    }

    #[test]
    fn printable_escapes_only_what_is_forbidden() {
        assert_eq!(printable("Zoë"), "Zoë");
        assert_eq!(printable("a\u{1b}[31m"), "a\\u{1b}[31m");
    }
}
