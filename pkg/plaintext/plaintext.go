// Package plaintext tells the characters that must not be in an id or a
// short text that travels in messages, logs, terminals and the console's
// pages, because they change how the text around them is shown.
package plaintext

import "unicode"

// Unsafe reports whether r changes how the text around it is shown: a
// control character (a NUL, the ESC of a terminal escape sequence, a
// carriage return) or a bidirectional formatting character, which
// reorders what follows it in a terminal or a browser ("Trojan Source":
// an id that reads as another, an amount shown reversed).
//
// Other format characters (category Cf) are taken: the zero-width joiner
// and non-joiner are part of emoji sequences and of the spelling of
// Persian or Hindi.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || IsBidiControl(r)
}

// IsBidiControl reports the Unicode bidirectional formatting characters:
// the embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069)
// and the implicit marks (U+200E, U+200F, U+061C).
func IsBidiControl(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e':
		return true
	case r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
