//! Text from outside (a session name read from a shared store, a library's error message
//! quoting a damaged file's bytes) made safe to print on a terminal.

use std::borrow::Cow;

/// `text` with every character a terminal would act on instead of showing replaced by a
/// visible escape: control characters (`\e`, `\n`, `\t`, `\x07`, C1 controls as `\u{9b}`),
/// the bidirectional overrides that reorder what is shown, and U+FFFD (the mark of bytes that
/// were not UTF-8) as `?`. A name with `\e[2J` in it would otherwise clear the screen of
/// whoever lists the sessions, and a newline would break the table.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            '\u{fffd}' => out.push('?'),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether [`printable`] escapes `c`.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\u{fffd}'
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert!(matches!(printable("deepfm vs mlp"), Cow::Borrowed(_)));
        assert_eq!(printable("é ünï 中"), "é ünï 中");
        assert_eq!(printable("\x1b[2J\x1b[31mEVIL\nx"), "\\e[2J\\e[31mEVIL\\nx");
        assert_eq!(printable("a\tb\rc\x07\x00"), "a\\tb\\rc\\x07\\x00");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(printable("got \"\u{fffd}\u{fffd};\""), "got \"??;\"");
        assert!(!printable("\x1b\n\u{9b}\u{202e}\u{fffd}")
            .chars()
            .any(needs_escape));
    }
}
