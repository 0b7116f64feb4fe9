//! Characters that must not reach a reader from outside text (posts, feeds,
//! names, subjects): they would make a message show other than it reads.

/// Private-use code points have no meaning of their own; no real title or
/// name needs one, and they are what template stand-ins were once made of.
pub fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// Invisible characters and direction overrides that spoof what a reader
/// sees: U+202E shows `gepj.exe` as `exe.jpeg`, U+200B hides inside a
/// word. Zero-width joiners (U+200C, U+200D) stay: scripts such as Persian
/// and emoji sequences need them.
pub fn is_spoofing(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'                      // Arabic letter mark
        | '\u{180E}'                    // Mongolian vowel separator
        | '\u{200B}'                    // zero-width space
        | '\u{200E}'..='\u{200F}'       // left-to-right / right-to-left marks
        | '\u{202A}'..='\u{202E}'       // embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'       // isolates
        | '\u{FEFF}'                    // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
    )
}

/// Whether `c` may appear in text we show: not a control character, not
/// private use, not spoofing.
pub fn is_shown(c: char) -> bool {
    !c.is_control() && !is_private_use(c) && !is_spoofing(c)
}

/// `text` without the characters that may not be shown.
pub fn shown_only(text: &str) -> String {
    text.chars().filter(|&c| is_shown(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_markers_overrides_and_invisibles_but_keeps_joiners() {
        assert_eq!(shown_only("Claim \u{E000}unsubscribe\u{E000} prize"), "Claim unsubscribe prize");
        assert_eq!(shown_only("a\u{202E}b\u{200B}c\u{FEFF}d\u{2066}e"), "abcde");
        assert_eq!(shown_only("👨\u{200D}👩"), "👨\u{200D}👩");
        assert_eq!(shown_only("Zoë Łukasz 日本"), "Zoë Łukasz 日本");
        assert_eq!(shown_only("\u{10FFFD}x\u{F0000}"), "x");
    }
}
