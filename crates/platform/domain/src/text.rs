//! Text people read on screens and statements: names and descriptions must show what they
//! are. Bidirectional control characters (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) reorder
//! what a screen shows, so "Amina\u{202E}txt.exe" displays as something else: refused.

use super::FieldError;

/// The bidirectional controls: marks, embeddings, overrides and isolates.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The problem with a name or description `value` of `field`, if it holds a bidirectional
/// control character.
pub fn display_problem(field: impl Into<String>, value: &str) -> Option<FieldError> {
    value.chars().find(|c| is_bidi_control(*c)).map(|c| {
        FieldError::new(
            field,
            format!(
                "must not contain bidirectional control characters (U+{:04X}): they change what is shown",
                c as u32
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_controls_are_refused_and_other_scripts_are_not() {
        for bad in ["Amina\u{202E}", "\u{202D}x", "a\u{2066}b\u{2069}", "\u{200F}", "x\u{061C}"] {
            assert_eq!(display_problem("given_name", bad).map(|e| e.field), Some("given_name".into()), "{bad:?}");
        }
        for good in ["Amina", "Ñúñez", "محمد", "שלום", "李", "O'Neil-Smith", "Zoë\u{200D}"] {
            assert_eq!(display_problem("given_name", good), None, "{good:?}");
        }
        assert_eq!(
            display_problem("name", "a\u{202E}b").unwrap().reason,
            "must not contain bidirectional control characters (U+202E): they change what is shown"
        );
    }
}
