//! JAAS login configuration files (`java.security.auth.login.config`), as the JDK's
//! `ConfigFile` reads them: sections `Name { module.Class flag key=value ...; ...; };`.
//!
//! Syntax accepted: `//` and `/* */` comments (and `#` line comments, which Java's tokenizer
//! does not treat specially but operators' files never mean as text), words of letters,
//! digits and `.`, `_`, `-`, `$`, `/`, `:` and double-quoted strings with `\` escapes as
//! option values, a section name given twice appends its entries (as the JDK). `${prop}`
//! expansion is not done (the text stays as written). Every error names the line.
//!
//! Pure: text in, sections out.

use std::collections::HashMap;
use std::fmt;

/// One login module entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional` (lowercase).
    pub flag: String,
    /// Options in file order (a key given twice keeps both; readers take the last).
    pub options: Vec<(String, String)>,
    pub line: usize,
}

/// A parsed file: section name -> entries (sections given twice are merged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JaasFile {
    pub sections: HashMap<String, Vec<Entry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for JaasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
    Eq,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '$' | '/' | ':' | '@' | '*' | '+')
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, JaasError> {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == '\n' {
                        line += 1;
                    } else if c == '*' && chars.peek() == Some(&'/') {
                        chars.next();
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(JaasError {
                        line: start,
                        message: "unterminated /* comment".into(),
                    });
                }
            }
            '{' => toks.push((Tok::Open, line)),
            '}' => toks.push((Tok::Close, line)),
            ';' => toks.push((Tok::Semi, line)),
            '=' => toks.push((Tok::Eq, line)),
            '"' => {
                let start = line;
                let mut s = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('\n') => line += 1,
                            Some(other) => s.push(other),
                            None => break,
                        },
                        '\n' => {
                            line += 1;
                            s.push('\n');
                        }
                        other => s.push(other),
                    }
                }
                if !closed {
                    return Err(JaasError {
                        line: start,
                        message: "unterminated quoted string".into(),
                    });
                }
                toks.push((Tok::Quoted(s), start));
            }
            c if is_word_char(c) => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if is_word_char(n) {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                toks.push((Tok::Word(s), line));
            }
            other => {
                return Err(JaasError {
                    line,
                    message: format!("unexpected character {other:?}"),
                })
            }
        }
    }
    Ok(toks)
}

/// Parses a JAAS configuration file's text.
pub fn parse(text: &str) -> Result<JaasFile, JaasError> {
    let toks = tokenize(text)?;
    let last_line = text.lines().count().max(1);
    let mut file = JaasFile::default();
    let mut i = 0;
    let at = |i: usize| toks.get(i).map_or(last_line, |(_, l)| *l);
    let expected = |i: usize, what: &str| -> JaasError {
        let found = match toks.get(i) {
            None => "the end of the file".to_string(),
            Some((Tok::Word(w), _)) => format!("\"{w}\""),
            Some((Tok::Quoted(w), _)) => format!("\"{w}\" (quoted)"),
            Some((Tok::Open, _)) => "'{'".into(),
            Some((Tok::Close, _)) => "'}'".into(),
            Some((Tok::Semi, _)) => "';'".into(),
            Some((Tok::Eq, _)) => "'='".into(),
        };
        JaasError {
            line: at(i),
            message: format!("expected {what}, found {found}"),
        }
    };
    while i < toks.len() {
        let name = match &toks[i].0 {
            Tok::Word(w) | Tok::Quoted(w) => w.clone(),
            _ => return Err(expected(i, "a section name")),
        };
        i += 1;
        if toks.get(i).map(|t| &t.0) != Some(&Tok::Open) {
            return Err(expected(i, "'{' after the section name"));
        }
        i += 1;
        let mut entries = Vec::new();
        loop {
            match toks.get(i).map(|t| &t.0) {
                Some(Tok::Close) => {
                    i += 1;
                    break;
                }
                Some(Tok::Word(module)) => {
                    let line = at(i);
                    let module = module.clone();
                    i += 1;
                    let flag = match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Word(f)) => f.to_ascii_lowercase(),
                        _ => {
                            return Err(expected(
                                i,
                                "a control flag (required, requisite, sufficient, optional)",
                            ))
                        }
                    };
                    if !matches!(
                        flag.as_str(),
                        "required" | "requisite" | "sufficient" | "optional"
                    ) {
                        return Err(JaasError {
                            line: at(i),
                            message: format!(
                                "invalid control flag \"{flag}\" (required, requisite, sufficient or optional)"
                            ),
                        });
                    }
                    i += 1;
                    let mut options = Vec::new();
                    loop {
                        match toks.get(i).map(|t| &t.0) {
                            Some(Tok::Semi) => {
                                i += 1;
                                break;
                            }
                            Some(Tok::Word(key)) => {
                                let key = key.clone();
                                i += 1;
                                if toks.get(i).map(|t| &t.0) != Some(&Tok::Eq) {
                                    return Err(expected(i, &format!("'=' after option {key}")));
                                }
                                i += 1;
                                let value = match toks.get(i).map(|t| &t.0) {
                                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v.clone(),
                                    _ => {
                                        return Err(expected(
                                            i,
                                            &format!("a value for option {key}"),
                                        ))
                                    }
                                };
                                i += 1;
                                options.push((key, value));
                            }
                            _ => {
                                return Err(expected(
                                    i,
                                    "an option key=value or ';' ending the entry",
                                ))
                            }
                        }
                    }
                    entries.push(Entry {
                        module,
                        flag,
                        options,
                        line,
                    });
                }
                _ => return Err(expected(i, "a login module class name or '}'")),
            }
        }
        if toks.get(i).map(|t| &t.0) != Some(&Tok::Semi) {
            return Err(expected(i, "';' after the section's '}'"));
        }
        i += 1;
        file.sections.entry(name).or_default().extend(entries);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_quotes() {
        let text = "// the server\n/* block\n comment */\nServer {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"bob \\\"pw\\\"\"\n  user_alice=secret;\n};\n# another\nClient { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"bob\" password=\"x\"; };\nServer { a.B optional; };\n";
        let f = parse(text).unwrap();
        let server = &f.sections["Server"];
        assert_eq!(server.len(), 2);
        assert_eq!(
            server[0].module,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(server[0].line, 5);
        assert_eq!(
            server[0].options,
            vec![
                ("user_bob".to_string(), "bob \"pw\"".to_string()),
                ("user_alice".to_string(), "secret".to_string())
            ]
        );
        assert_eq!(server[1].flag, "optional");
        assert_eq!(f.sections["Client"][0].options.len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "Server {\n m.M required user_a=\"x\"\n};\n",
                3,
                "';' ending the entry",
            ),
            ("Server {\n m.M mandatory;\n};", 2, "invalid control flag"),
            (
                "Server {\n m.M required user_a=;\n};",
                2,
                "a value for option user_a",
            ),
            ("Server {\n m.M required;\n}\n", 3, "';' after the section"),
            ("Server\n m.M required;\n};", 2, "'{'"),
            (
                "Server {\n m.M required user_a=\"x;\n};",
                2,
                "unterminated quoted",
            ),
            ("/* open\n\n", 1, "unterminated /*"),
            (
                "Server {\n m.M required user_a=\"x\" & ;\n};",
                2,
                "unexpected character",
            ),
        ];
        for (text, line, what) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn empty_file_has_no_sections() {
        assert!(parse("  // nothing\n").unwrap().sections.is_empty());
    }
}
