//! The tidy checks as a test, so CI and a developer see the same verdict: the tree is
//! formatted with rustfmt. (`.ci/run` also runs clippy with warnings denied.)

use std::process::Command;

#[test]
fn code_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
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
