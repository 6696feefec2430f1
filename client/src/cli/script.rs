//! `dialctl txn`'s little languages: the script of an interactive transaction, and the
//! `--if` / `--then` / `--else` arguments of a one-shot one.
//!
//! A script has one operation per line; blank lines and lines starting with `#` are skipped:
//!
//! ```text
//! # interactive transaction: reads see one snapshot, writes apply atomically at commit
//! get alice
//! put bob 42
//! del carol
//! scan a z
//! ```
//!
//! | line | does |
//! |---|---|
//! | `get KEY` | reads KEY (printed) |
//! | `put KEY VALUE` | buffers a write |
//! | `del KEY` (or `delete`) | buffers a delete |
//! | `scan [START [END]]` | reads `[START, END)` (printed); omitted or `""`: unbounded |
//!
//! Words are separated by spaces or tabs. A word with spaces, or an empty one, is written in
//! double quotes, where `\"`, `\\`, `\n`, `\t` and `\xHH` (any byte) are escapes; a `#`
//! starting a word begins a comment. Errors name the line (1-based).
//!
//! One-shot conditions (`--if`): `exists KEY`, `absent KEY`, `value KEY = VALUE`,
//! `revision KEY = R` (the `=` may be left out). One-shot ops (`--then`, `--else`):
//! `put KEY VALUE`, `del KEY`, `get KEY`.

use std::fmt;

use bytes::Bytes;

use crate::{Compare, Entry, TxnOp};

/// One operation of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptOp {
    /// Read a key.
    Get(Bytes),
    /// Buffer a put.
    Put(Bytes, Bytes),
    /// Buffer a delete.
    Del(Bytes),
    /// Read `[start, end)` (empty: unbounded).
    Scan(Bytes, Bytes),
}

/// An operation with its line number (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptLine {
    /// The line number in the script, from 1.
    pub line: usize,
    /// The operation.
    pub op: ScriptOp,
}

/// A script that does not parse: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// The line number, from 1 (0 for the script as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "script: {}", self.message),
            n => write!(f, "script line {n}: {}", self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

/// What a read of the script returned, for printing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// A `get`.
    Get {
        /// The script line.
        line: usize,
        /// The key.
        key: Bytes,
        /// The entry; `None` when absent (revision 0 for the transaction's own write).
        entry: Option<Entry>,
    },
    /// A `scan`.
    Scan {
        /// The script line.
        line: usize,
        /// The start of the range.
        start: Bytes,
        /// The end of the range (empty: unbounded).
        end: Bytes,
        /// The entries, in key order.
        items: Vec<Entry>,
    },
}

/// Splits a line into words: bare words, or double-quoted ones with escapes. A `#` starting a
/// word ends the line.
pub fn words(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        if first == '#' {
            return Ok(out);
        }
        let mut word = Vec::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted word (a \" is missing)".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => word.push(b'"'),
                        Some('\\') => word.push(b'\\'),
                        Some('n') => word.push(b'\n'),
                        Some('t') => word.push(b'\t'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            match u8::from_str_radix(&hex, 16) {
                                Ok(b) if hex.len() == 2 => word.push(b),
                                _ => {
                                    return Err(format!(
                                        "\\x must be followed by two hex digits, not {hex:?}"
                                    ))
                                }
                            }
                        }
                        Some(c) => {
                            return Err(format!(
                                "unknown escape \\{c} (use \\\", \\\\, \\n, \\t or \\xHH)"
                            ))
                        }
                        None => return Err("unterminated quoted word (a \" is missing)".into()),
                    },
                    Some(c) => {
                        let mut buf = [0u8; 4];
                        word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(
                    "a quoted word must be followed by a space or the end of the line".into(),
                );
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err("a quote may only start a word".into());
                }
                let mut buf = [0u8; 4];
                word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                chars.next();
            }
        }
        out.push(word);
    }
}

/// The one key of `op`'s arguments, non-empty.
fn one_key(op: &str, args: &[Vec<u8>]) -> Result<Bytes, String> {
    match args {
        [key] if !key.is_empty() => Ok(Bytes::from(key.clone())),
        [_] => Err(format!("{op}: the key is empty")),
        _ => Err(format!("{op} takes one KEY, not {} words", args.len())),
    }
}

/// A key and value (`put KEY VALUE`).
fn key_value(op: &str, args: &[Vec<u8>]) -> Result<(Bytes, Bytes), String> {
    match args {
        [key, value] if !key.is_empty() => {
            Ok((Bytes::from(key.clone()), Bytes::from(value.clone())))
        }
        [_, _] => Err(format!("{op}: the key is empty")),
        _ => Err(format!(
            "{op} takes KEY and VALUE, not {} words (quote a value with spaces: \"a b\")",
            args.len()
        )),
    }
}

/// Parses one script line's words into an operation; `None` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<ScriptOp>, String> {
    let words = words(line)?;
    let Some((op, args)) = words.split_first() else {
        return Ok(None);
    };
    let op = String::from_utf8_lossy(op).to_ascii_lowercase();
    Ok(Some(match op.as_str() {
        "get" => ScriptOp::Get(one_key("get", args)?),
        "put" => {
            let (k, v) = key_value("put", args)?;
            ScriptOp::Put(k, v)
        }
        "del" | "delete" => ScriptOp::Del(one_key("del", args)?),
        "scan" => match args {
            [] => ScriptOp::Scan(Bytes::new(), Bytes::new()),
            [start] => ScriptOp::Scan(Bytes::from(start.clone()), Bytes::new()),
            [start, end] => ScriptOp::Scan(Bytes::from(start.clone()), Bytes::from(end.clone())),
            _ => {
                return Err(format!(
                    "scan takes at most START and END, not {} words",
                    args.len()
                ))
            }
        },
        other => {
            return Err(format!(
                "unknown operation {other:?} (expected get, put, del or scan)"
            ))
        }
    }))
}

/// Parses a whole script. It must hold at least one operation.
pub fn parse_script(text: &str) -> Result<Vec<ScriptLine>, ScriptError> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(op)) => ops.push(ScriptLine { line: i + 1, op }),
            Ok(None) => {}
            Err(message) => {
                return Err(ScriptError {
                    line: i + 1,
                    message,
                })
            }
        }
    }
    if ops.is_empty() {
        return Err(ScriptError {
            line: 0,
            message: "no operations (expected lines such as `get KEY`, `put KEY VALUE`, `del KEY`, `scan START END`)".into(),
        });
    }
    Ok(ops)
}

/// Parses a one-shot condition: `exists KEY`, `absent KEY`, `value KEY = VALUE` or
/// `revision KEY = R`.
pub fn parse_compare(text: &str) -> Result<Compare, String> {
    let words = words(text)?;
    let Some((what, args)) = words.split_first() else {
        return Err(
            "empty condition (expected exists KEY, absent KEY, value KEY = V or revision KEY = R)"
                .into(),
        );
    };
    let what = String::from_utf8_lossy(what).to_ascii_lowercase();
    // `value K = V` or `value K V`.
    let operand = |args: &[Vec<u8>]| -> Result<(Bytes, Vec<u8>), String> {
        match args {
            [key, eq, v] if eq == b"=" && !key.is_empty() => {
                Ok((Bytes::from(key.clone()), v.clone()))
            }
            [key, v] if !key.is_empty() => Ok((Bytes::from(key.clone()), v.clone())),
            _ => Err(format!("{what} takes KEY = OPERAND")),
        }
    };
    match what.as_str() {
        "exists" => Ok(Compare::exists(one_key("exists", args)?)),
        "absent" | "missing" => Ok(Compare::absent(one_key("absent", args)?)),
        "value" => {
            let (key, v) = operand(args)?;
            Ok(Compare::value(key, v))
        }
        "revision" | "rev" => {
            let (key, r) = operand(args)?;
            let r = std::str::from_utf8(&r)
                .ok()
                .and_then(|r| r.parse::<u64>().ok())
                .ok_or_else(|| format!("revision: {:?} is not a number", String::from_utf8_lossy(&r)))?;
            Ok(Compare::revision(key, r))
        }
        other => Err(format!(
            "unknown condition {other:?} (expected exists KEY, absent KEY, value KEY = V or revision KEY = R)"
        )),
    }
}

/// Parses a one-shot op: `put KEY VALUE`, `del KEY` or `get KEY`.
pub fn parse_txn_op(text: &str) -> Result<TxnOp, String> {
    match parse_line(text)? {
        Some(ScriptOp::Get(k)) => Ok(TxnOp::get(k)),
        Some(ScriptOp::Put(k, v)) => Ok(TxnOp::put(k, v)),
        Some(ScriptOp::Del(k)) => Ok(TxnOp::delete(k)),
        Some(ScriptOp::Scan(..)) => Err(
            "a one-shot transaction cannot scan (use an interactive one: dialctl txn --file)"
                .into(),
        ),
        None => Err("empty op (expected put KEY VALUE, del KEY or get KEY)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn the_example_script_parses_with_line_numbers() {
        let text = "# interactive transaction: reads see one snapshot, writes apply atomically at commit\n\
                    get alice\n\
                    put bob 42\n\
                    \n\
                    del carol   # gone\n\
                    scan a z\n";
        let ops = parse_script(text).expect("valid");
        assert_eq!(
            ops,
            vec![
                ScriptLine {
                    line: 2,
                    op: ScriptOp::Get(b("alice"))
                },
                ScriptLine {
                    line: 3,
                    op: ScriptOp::Put(b("bob"), b("42"))
                },
                ScriptLine {
                    line: 5,
                    op: ScriptOp::Del(b("carol"))
                },
                ScriptLine {
                    line: 6,
                    op: ScriptOp::Scan(b("a"), b("z"))
                },
            ]
        );
    }

    #[test]
    fn quoted_words_and_escapes() {
        assert_eq!(
            parse_line(r#"put "my key" "a \"b\"\tc\x00\xff""#).expect("valid"),
            Some(ScriptOp::Put(
                b("my key"),
                Bytes::from_static(b"a \"b\"\tc\x00\xff")
            ))
        );
        assert_eq!(
            parse_line(r#"put k """#).expect("valid"),
            Some(ScriptOp::Put(b("k"), Bytes::new()))
        );
        assert_eq!(
            parse_line("scan").expect("valid"),
            Some(ScriptOp::Scan(Bytes::new(), Bytes::new()))
        );
        assert_eq!(
            parse_line(r#"scan "" m"#).expect("valid"),
            Some(ScriptOp::Scan(Bytes::new(), b("m")))
        );
        assert_eq!(
            parse_line("PUT k v#not-a-comment").expect("valid"),
            Some(ScriptOp::Put(b("k"), b("v#not-a-comment")))
        );
        assert_eq!(parse_line("   # only a comment").expect("valid"), None);
        assert_eq!(
            parse_line("delete k").expect("valid"),
            Some(ScriptOp::Del(b("k")))
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            ("get a\npt b 1\n", 2, "unknown operation \"pt\""),
            (
                "get a\n\n# c\nput b\n",
                4,
                "put takes KEY and VALUE, not 1 words",
            ),
            ("put a 1 2\n", 1, "not 3 words"),
            ("get\n", 1, "get takes one KEY"),
            ("get a b\n", 1, "get takes one KEY"),
            ("get \"\"\n", 1, "the key is empty"),
            ("get a\nput \"b 1\n", 2, "unterminated"),
            ("put k \"\\q\"\n", 1, "unknown escape \\q"),
            ("put k \"\\xZZ\"\n", 1, "two hex digits"),
            ("put k \"a\"b\n", 1, "followed by a space"),
            ("put k a\"b\"\n", 1, "may only start a word"),
            ("scan a b c\n", 1, "at most START and END"),
        ] {
            let err = parse_script(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
            assert!(err
                .to_string()
                .starts_with(&format!("script line {line}: ")));
        }
        let empty = parse_script("# nothing\n\n").expect_err("empty");
        assert_eq!(empty.line, 0);
        assert_eq!(empty.to_string().split(':').next(), Some("script"));
    }

    #[test]
    fn one_shot_conditions_and_ops() {
        assert_eq!(parse_compare("exists k"), Ok(Compare::exists("k")));
        assert_eq!(parse_compare("absent k"), Ok(Compare::absent("k")));
        assert_eq!(parse_compare("value k = v"), Ok(Compare::value("k", "v")));
        assert_eq!(
            parse_compare("value k \"a b\""),
            Ok(Compare::value("k", "a b"))
        );
        assert_eq!(
            parse_compare("revision k = 7"),
            Ok(Compare::revision("k", 7))
        );
        for bad in [
            "",
            "exists",
            "value k",
            "revision k = x",
            "older k 1",
            "exists a b",
        ] {
            assert!(parse_compare(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_txn_op("put k v"), Ok(TxnOp::put("k", "v")));
        assert_eq!(parse_txn_op("del k"), Ok(TxnOp::delete("k")));
        assert_eq!(parse_txn_op("get k"), Ok(TxnOp::get("k")));
        for bad in ["", "scan a z", "put k", "cas k"] {
            assert!(parse_txn_op(bad).is_err(), "{bad:?}");
        }
    }
}
