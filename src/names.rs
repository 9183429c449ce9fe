//! What a name (or a room name) may be.
//!
//! Owns the naming rules shared by the server, which enforces them, and the client, which checks
//! them first to give a friendlier error. Names are rejected, never repaired: no truncation, no
//! stripping of characters, because the server prints them on its terminal and echoes them to
//! other clients verbatim.

use std::fmt;

/// Longest accepted name, in Unicode scalar values (characters), not bytes.
pub const MAX_NAME_CHARS: usize = 64;

/// Longest accepted team name: short enough that a room's every buzz, each with its team, fits
/// one frame.
pub const MAX_TEAM_CHARS: usize = 24;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        chars: usize,
    },
    /// A team's name over [`MAX_TEAM_CHARS`].
    TeamTooLong {
        chars: usize,
    },
    /// Blank space at the start or the end: two names that differ only there look the same.
    Padded,
    /// A character the pages use to mark a name (`(you)`, `· next round`).
    Marker {
        ch: char,
    },
    /// A control character (which includes the ESC of every terminal escape sequence), a
    /// bidirectional-override character or an invisible one, with its position in characters.
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
            NameError::TeamTooLong { chars } => write!(
                f,
                "is {chars} characters long; a team's name is at most {MAX_TEAM_CHARS}"
            ),
            NameError::Padded => f.write_str("starts or ends with a space"),
            NameError::Marker { ch } => write!(
                f,
                "contains {ch:?}, which the quiz's pages use to mark names"
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

/// Longest accepted chat line, in characters.
pub const MAX_LINE_CHARS: usize = 1024;

/// Checks a name: 1 to [`MAX_NAME_CHARS`] characters, not only white space (Unicode
/// `White_Space`), none of the [forbidden] characters. Any other Unicode is welcome.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.chars().all(char::is_whitespace) {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong { chars });
    }
    check_characters(name)
}

/// Characters the pages add to names (`Ann (you)`, `Dee · next round`): a name holding one
/// could pass for another name with its mark.
pub const MARKERS: [char; 3] = ['(', ')', '·'];

/// Checks a name for a quiz seat (a player's or a team's): [`validate`], and no space at either
/// end, none of the pages' [`MARKERS`].
pub fn validate_seat(name: &str) -> Result<(), NameError> {
    validate(name)?;
    if name.trim() != name {
        return Err(NameError::Padded);
    }
    match name.chars().find(|c| MARKERS.contains(c)) {
        Some(ch) => Err(NameError::Marker { ch }),
        None => Ok(()),
    }
}

/// Checks a team's name: [`validate_seat`], and at most [`MAX_TEAM_CHARS`] characters.
pub fn validate_team(team: &str) -> Result<(), NameError> {
    validate_seat(team)?;
    let chars = team.chars().count();
    if chars > MAX_TEAM_CHARS {
        return Err(NameError::TeamTooLong { chars });
    }
    Ok(())
}

/// What a name looks like, for telling whether two names would show as the same: Unicode's
/// confusable skeleton (UTS 39) of its lower case. `Viсtim` with a Cyrillic `с` and `victim`
/// have the same.
pub fn skeleton(name: &str) -> String {
    let skeleton: String = unicode_security::skeleton(&name.to_lowercase()).collect();
    skeleton.to_lowercase()
}

/// Checks a chat line: at most [`MAX_LINE_CHARS`] characters (empty is fine), none of the
/// [forbidden] characters.
pub fn validate_line(line: &str) -> Result<(), NameError> {
    let chars = line.chars().count();
    if chars > MAX_LINE_CHARS {
        return Err(NameError::TooLong { chars });
    }
    check_characters(line)
}

fn check_characters(text: &str) -> Result<(), NameError> {
    match text.chars().enumerate().find(|&(_, c)| forbidden(c)) {
        Some((at, ch)) => Err(NameError::Forbidden { at, ch }),
        None => Ok(()),
    }
}

/// Characters no name or chat line may hold, by Unicode general category and one property:
/// - controls (Cc): they drive a terminal (ESC sequences, bell, a carriage return);
/// - format characters (Cf): bidirectional overrides make text display as something else
///   ("Trojan Source"), and the rest (zero-width spaces, interlinear annotations U+FFF9-U+FFFB,
///   ...) are invisible;
/// - line and paragraph separators (Zl, Zp: U+2028, U+2029) break a line where none may be;
/// - private-use (Co), surrogate (Cs) and unassigned (Cn) code points, which show as nothing
///   anyone agrees on;
/// - `Default_Ignorable_Code_Point`, the characters Unicode says render as nothing whatever their
///   category (Hangul fillers, variation selectors);
/// - U+2800 BRAILLE PATTERN BLANK, the one symbol (So) that draws nothing and is not white space,
///   used to pass for a space where spaces are refused.
///
/// The zero-width joiner and the emoji variation selectors are allowed: emoji need them.
pub fn forbidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}') {
        return false;
    }
    matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
    ) || default_ignorable(c)
        || c == '\u{2800}'
}

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt, Unicode 15).
fn default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
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
    fn invisible_characters_are_forbidden_but_emoji_joiners_are_not() {
        for bad in [
            "Al\u{200B}ice",
            "Bob\u{200F}",
            "E\u{2060}ve",
            "\u{FEFF}Ann",
            "x\u{00AD}y",
        ] {
            assert!(
                matches!(validate(bad), Err(NameError::Forbidden { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(validate("👩\u{200D}💻 Zoë"), Ok(()));
        assert_eq!(validate("❤\u{FE0F}"), Ok(()));
        // Only white space, in any script, is empty: NBSP and the ideographic space too.
        assert_eq!(validate("\u{00A0}\u{3000} "), Err(NameError::Empty));
    }

    /// One rule, by category: line separators, interlinear annotations, private use and
    /// unassigned code points are refused like the other invisible and format characters.
    #[test]
    fn separators_annotations_and_unassigned_are_forbidden_by_category() {
        for c in [
            '\u{2028}', '\u{2029}', '\u{FFF9}', '\u{FFFA}', '\u{FFFB}', '\u{E000}', '\u{0378}',
        ] {
            let name = format!("Ann{c}Lee");
            assert_eq!(
                validate(&name),
                Err(NameError::Forbidden { at: 3, ch: c }),
                "U+{:04X}",
                u32::from(c)
            );
        }
        // Letters, marks, symbols and spaces of any script are names.
        for name in [
            "Zoë Li",
            "李小龍",
            "Ñandú",
            "👩\u{200D}💻 dev",
            "a\u{3000}b",
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn chat_lines_may_be_empty_but_not_hostile() {
        assert_eq!(validate_line(""), Ok(()));
        assert_eq!(validate_line("hello there"), Ok(()));
        assert!(validate_line("\u{1b}[2J").is_err());
        assert!(validate_line("a\nb").is_err());
        assert!(validate_line("abc\u{202E}def").is_err());
        assert!(validate_line(&"x".repeat(1025)).is_err());
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
