//! JSON values in insertion order, written the way ZooKeeper's AdminServer writes them
//! (Jackson's `ObjectMapper` with `INDENT_OUTPUT`: `DefaultPrettyPrinter`), so that the
//! bytes match: `{` / two spaces per object level / `"key" : value`, arrays inline as
//! `[ a, b ]`, empty ones `[ ]` and `{ }`, doubles as Java's `Double.toString`.

use super::java_double;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    /// Fields in the order they are written.
    Obj(Vec<(String, Json)>),
}

impl From<bool> for Json {
    fn from(v: bool) -> Json {
        Json::Bool(v)
    }
}
impl From<i64> for Json {
    fn from(v: i64) -> Json {
        Json::Int(v)
    }
}
impl From<i32> for Json {
    fn from(v: i32) -> Json {
        Json::Int(v.into())
    }
}
impl From<u32> for Json {
    fn from(v: u32) -> Json {
        Json::Int(v.into())
    }
}
impl From<u16> for Json {
    fn from(v: u16) -> Json {
        Json::Int(v.into())
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Json {
        Json::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Json {
    fn from(v: f64) -> Json {
        Json::Float(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Json {
        Json::Str(v.to_string())
    }
}
impl From<String> for Json {
    fn from(v: String) -> Json {
        Json::Str(v)
    }
}

/// An object under construction, with Java `LinkedHashMap.put` semantics: a key put again
/// keeps its place and takes the new value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonMap(pub Vec<(String, Json)>);

impl JsonMap {
    pub fn new() -> JsonMap {
        JsonMap(Vec::new())
    }

    pub fn put(&mut self, key: &str, value: impl Into<Json>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn into_json(self) -> Json {
        Json::Obj(self.0)
    }
}

impl From<JsonMap> for Json {
    fn from(map: JsonMap) -> Json {
        map.into_json()
    }
}

impl Json {
    /// Jackson's pretty-printed text (no newline after the last brace, as ZooKeeper sends).
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, 0);
        out
    }
}

fn indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// `level`: the number of enclosing objects (Jackson's arrays are inline and do not indent).
fn write_value(out: &mut String, value: &Json, level: usize) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::Float(f) => {
            if f.is_finite() {
                out.push_str(&java_double(*f));
            } else {
                // Jackson quotes NaN and the infinities (QUOTE_NON_NUMERIC_NUMBERS).
                write_string(out, &java_double(*f));
            }
        }
        Json::Str(s) => write_string(out, s),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push(' ');
                write_value(out, item, level);
            }
            out.push_str(" ]");
        }
        Json::Obj(fields) => {
            out.push('{');
            if fields.is_empty() {
                out.push_str(" }");
                return;
            }
            for (i, (key, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_string(out, key);
                out.push_str(" : ");
                write_value(out, field, level + 1);
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// Jackson's escapes: `"` and `\`, the short forms of \b \t \n \f \r, `\u00XX` (upper-case
/// hex) for the other control characters; everything else as is (UTF-8).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jackson_layout() {
        let mut inner = JsonMap::new();
        inner.put("a", 1i64);
        inner.put("b", 2.5f64);
        let mut conn = JsonMap::new();
        conn.put("x", "y");
        let mut top = JsonMap::new();
        top.put("nested", inner);
        top.put(
            "list",
            Json::Arr(vec![conn.into_json(), JsonMap::new().into_json()]),
        );
        top.put("ids", Json::Arr(vec![Json::Int(1), Json::Int(2)]));
        top.put("empty", Json::Arr(vec![]));
        top.put("none", Json::Null);
        top.put("text", "a\"b\\c\nd\u{1}");
        assert_eq!(
            top.into_json().to_pretty(),
            "{\n  \"nested\" : {\n    \"a\" : 1,\n    \"b\" : 2.5\n  },\n  \"list\" : [ {\n    \
             \"x\" : \"y\"\n  }, { } ],\n  \"ids\" : [ 1, 2 ],\n  \"empty\" : [ ],\n  \
             \"none\" : null,\n  \"text\" : \"a\\\"b\\\\c\\nd\\u0001\"\n}"
        );
    }

    #[test]
    fn put_keeps_the_first_place() {
        let mut m = JsonMap::new();
        m.put("error", "x");
        m.put("command", "c");
        m.put("error", Json::Null);
        assert_eq!(m.0[0], ("error".to_string(), Json::Null));
        assert_eq!(m.0.len(), 2);
    }

    #[test]
    fn doubles_as_java() {
        assert_eq!(Json::Float(0.0).to_pretty(), "0.0");
        assert_eq!(Json::Float(2.0909).to_pretty(), "2.0909");
        assert_eq!(Json::Float(f64::NAN).to_pretty(), "\"NaN\"");
    }
}
