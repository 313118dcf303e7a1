//! A test that reads the process-wide heap counter ([`crate::HEAP`]) runs
//! alone in a process of its own: the test binary runs itself on that one
//! test, so no other test allocates while it counts.

use std::process::Command;

/// The variable naming the test that a child process runs alone.
const VAR: &str = "BPTT_TEST_ALONE";

/// Whether the calling test, `name` (its path as the test binary lists it),
/// runs its body in this process: yes in the child that runs it alone;
/// otherwise this starts that child, fails if it failed (or ran no test) and
/// says no.
pub fn alone(name: &str) -> bool {
    if std::env::var(VAR).is_ok_and(|v| v == name) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1"])
        .env(VAR, name)
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name}, run alone:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
