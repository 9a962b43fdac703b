//! Regular expressions: Koncorde's `regexp` keyword compiled with the
//! `regex` crate, made to behave like RE2 (Koncorde's default engine).
//!
//! Differences between RE2 and the `regex` crate that are smoothed out:
//! - `\d`, `\w`, `\s`, `\b` (and their negations) are ASCII-only in RE2,
//!   Unicode-aware in `regex`: they are rewritten to ASCII classes;
//! - inside a bracket class, `[`, `&` and `~` are literals in RE2 but start
//!   nested classes / set operations in `regex`: they are escaped.
//!
//! Flags follow JavaScript's `RegExp` rules (letters `dgimsuvy`, each at
//! most once, `u` and `v` exclusive); `i`, `m` and `s` change matching, the
//! others have no effect on a yes/no test.

use regex::{Regex, RegexBuilder};

/// Compiled-program size limit for user-supplied patterns.
const SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// Compiles `pattern` with JavaScript-style `flags`.
pub(crate) fn compile(pattern: &str, flags: &str) -> Result<Regex, String> {
    let mut seen = String::new();
    for c in flags.chars() {
        if !"dgimsuvy".contains(c) {
            return Err(format!("invalid flag \"{c}\""));
        }
        if seen.contains(c) {
            return Err(format!("duplicate flag \"{c}\""));
        }
        seen.push(c);
    }
    if seen.contains('u') && seen.contains('v') {
        return Err("flags \"u\" and \"v\" cannot be combined".to_owned());
    }
    let translated = translate(pattern);
    RegexBuilder::new(&translated)
        .case_insensitive(seen.contains('i'))
        .multi_line(seen.contains('m'))
        .dot_matches_new_line(seen.contains('s'))
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s.lines().last().unwrap_or("syntax error").trim().to_owned(),
            regex::Error::CompiledTooBig(_) => "pattern too large".to_owned(),
            other => other.to_string(),
        })
}

/// Rewrites RE2 syntax into equivalent `regex` crate syntax.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    // Inside a bracket class, and whether the class just opened (a `]`
    // right after `[` or `[^` is a literal).
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(e) = chars.next() else {
                out.push('\\');
                break;
            };
            class_start = false;
            let rewritten = if in_class {
                match e {
                    'd' => Some("0-9"),
                    'w' => Some("0-9A-Za-z_"),
                    's' => Some("\\t\\n\\x0C\\r "),
                    'D' => Some("[:^digit:]"),
                    'W' => Some("[:^word:]"),
                    'S' => Some("[:^space:]"),
                    _ => None,
                }
            } else {
                match e {
                    'd' => Some("[0-9]"),
                    'w' => Some("[0-9A-Za-z_]"),
                    's' => Some("[\\t\\n\\x0C\\r ]"),
                    'D' => Some("[^0-9]"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    'S' => Some("[^\\t\\n\\x0C\\r ]"),
                    'b' => Some("(?-u:\\b)"),
                    'B' => Some("(?-u:\\B)"),
                    _ => None,
                }
            };
            match rewritten {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(e);
                }
            }
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => {
                    in_class = false;
                    out.push(']');
                }
                '[' if chars.peek() == Some(&':') => {
                    // POSIX class `[:name:]`: copy it whole.
                    out.push('[');
                    for d in chars.by_ref() {
                        out.push(d);
                        if d == ']' {
                            break;
                        }
                    }
                }
                '[' | '&' | '~' | ']' => {
                    out.push('\\');
                    out.push(c);
                }
                '^' if class_start && out.ends_with('[') => out.push('^'),
                _ => out.push(c),
            }
            // `[^` keeps the class "just opened".
            class_start = c == '^' && class_start && out.ends_with("[^");
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
        }
        out.push(c);
    }
    out
}
