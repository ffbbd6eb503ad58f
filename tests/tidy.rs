//! The tidy checks as tests, so CI and a developer see the same verdict: the tree is
//! formatted with rustfmt, and clippy (with the `[lints]` of Cargo.toml, e.g. every unsafe
//! block documented) finds nothing, warnings denied.

use std::process::Command;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

#[test]
fn code_is_formatted() {
    let output = cargo()
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo fmt");
    assert!(
        output.status.success(),
        "cargo fmt --check found unformatted code (run `cargo fmt`):\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// clippy in a target directory of its own (the test binary's own build may still hold
/// the usual one), so it runs while the other tests do.
#[test]
fn clippy_finds_nothing() {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = std::path::Path::new(root)
        .join("target")
        .join("tidy-clippy");
    let output = cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .output()
        .expect("run cargo clippy");
    assert!(
        output.status.success(),
        "cargo clippy --workspace --all-targets -- -D warnings failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
