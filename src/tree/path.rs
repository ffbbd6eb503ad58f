//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` and the path splitting of
//! `PrepRequestProcessor` / `DataTree` apply them.

use crate::proto::ErrorCode;

/// ZooKeeper's `PathUtils.validatePath`: BadArguments unless `path` is `/` or an absolute
/// path of non-empty, non-relative (`.`, `..`) names without forbidden characters.
///
/// Java checks UTF-16 code units, so every character outside the Basic Multilingual Plane
/// (a surrogate pair in Java) is refused, as are the private use area U+E000..U+F8FF,
/// U+FFF0..U+FFFF and the C0/C1 control characters (NUL included).
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes.last() == Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    // Every name between two slashes (or the end) must be non-empty, not "." nor "..", and
    // free of forbidden characters. The first byte is '/', so the first piece is empty.
    for name in path[1..].split('/') {
        if name.is_empty() || name == "." || name == ".." {
            return Err(ErrorCode::BadArguments);
        }
        if name.chars().any(forbidden_char) {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

fn forbidden_char(c: char) -> bool {
    let c = c as u32;
    c <= 0x1f
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        // Beyond the BMP Java sees a surrogate pair (0xd800..=0xdfff): refused.
        || c > 0xffff
}

/// The parent part of `path` as ZooKeeper computes it (`path.substring(0, lastSlash)`):
/// `None` when there is no slash. The parent of `/a` is the empty string, which ZooKeeper's
/// node map aliases to the root; [`canonical`] maps it back to `/`.
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

/// The last name of a path (after its last slash); the whole string when there is none.
pub(crate) fn name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// ZooKeeper keeps the root under both `""` and `"/"`; we store it under `/` only.
pub(crate) fn canonical(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// The nodes DataTree.isSpecialPath names: never deleted.
pub(crate) fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> bool {
        validate_path(p).is_ok()
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/zookeeper",
            "/a.",
            "/.a",
            "/a..",
            "/...",
            "/a/.../b",
            "/ü",
            "/日本",
            "/a b",
        ] {
            assert!(ok(p), "{p:?} should be valid");
        }
    }

    #[test]
    fn refuses_what_path_utils_refuses() {
        for p in [
            "",
            "a",
            "a/b",
            "//",
            "/a/",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/./a",
            "/../a",
            "/a\0b",
            "/a\u{1}",
            "/a\u{1f}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{f8ff}",
            "/a\u{fff0}",
            "/a\u{fffd}",
            "/a\u{ffff}",
            "/a\u{1f600}",
        ] {
            assert_eq!(validate_path(p), Err(ErrorCode::BadArguments), "{p:?}");
        }
        // Just outside the refused ranges.
        assert!(ok("/a\u{20}"));
        assert!(ok("/a\u{a0}"));
        assert!(ok("/a\u{d7ff}"));
        assert!(ok("/a\u{f900}"));
        assert!(ok("/a\u{ffef}"));
    }

    #[test]
    fn splits_like_zookeeper() {
        assert_eq!(parent_of("/a"), Some(""));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a/"), Some("/a"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(name_of("/a/b"), "b");
        assert_eq!(name_of("/a"), "a");
        assert_eq!(canonical(""), "/");
        assert_eq!(canonical("/x"), "/x");
        assert!(is_special("/zookeeper/config"));
        assert!(!is_special("/zookeeper/other"));
    }
}
