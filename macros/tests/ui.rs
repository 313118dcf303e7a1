//! Compile-fail tests of `#[bptt]` and `cell!`: every error message, and
//! where it points, is pinned in `ui/fail/*.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
}
