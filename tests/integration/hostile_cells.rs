//! Generated hostile cell definitions: deep nesting, long sums, long
//! literals, deep `let` chains, 1 MB files. Each ends in under a second with
//! a result or one clear line, on the file parser and on the macro's compile
//! path (`expand_cell`, the code behind `cell!`), on a thread with a 2 MiB
//! stack (smaller than the compiler's).

use std::time::{Duration, Instant};

use bptt::cell_lang::CellDef;
use bptt::cell_lang::limits::{
    MAX_DEPTH, MAX_NESTING, MAX_OPERATOR_RUN, MAX_STATEMENTS, MAX_TERMS, MAX_TOKEN_CHARS,
};

/// A cell whose new state is `value`, after `lets`.
fn cell(lets: &str, value: &str) -> String {
    format!(
        "#[sizes(input = 3, hidden = 4)]\ncell c {{\n  size input, hidden;\n  input x: [input];\n  state h: [hidden];\n  param w: [input, hidden];\n{lets}\n  h = {value};\n}}\n"
    )
}

/// Runs `f` on a thread with a 2 MiB stack, within a second.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let start = Instant::now();
    let out = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap_or_else(|_| panic!("{what}: panicked"));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    out
}

/// Parses and compiles `src` as a file and through the macro's path; returns
/// the file error (one line), if any, after checking the macro agrees.
fn run(what: &str, src: String) -> Result<(), String> {
    let tokens = src.clone();
    let file = bounded(what, move || {
        CellDef::parse_str(&tokens)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                d.compile(&[("input", 3), ("hidden", 4)])
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
    });
    let macro_out = bounded(what, move || {
        let stream: proc_macro2::TokenStream = src.parse().expect("lexes");
        bptt::emit::cell::expand_cell(stream).to_string()
    });
    match &file {
        Ok(()) => assert!(
            !macro_out.contains("compile_error"),
            "{what}: {macro_out:.300}"
        ),
        Err(e) => {
            assert_eq!(e.lines().count(), 1, "{what}: {e}");
            assert!(e.len() < 300, "{what}: a long message: {e:.400}");
            assert!(
                macro_out.contains("compile_error"),
                "{what}: the macro accepted it"
            );
        }
    }
    file
}

fn refused(what: &str, src: String, expected: &str) {
    let err = run(what, src).expect_err(what);
    assert!(err.contains(expected), "{what}: {err}");
    assert!(
        err.starts_with("line "),
        "{what}: no line and column: {err}"
    );
}

#[test]
fn nesting_at_the_limit_works_and_beyond_it_is_refused() {
    // The cell's braces and the call's group are two levels.
    let ok = MAX_NESTING - 2;
    run(
        "nested at the limit",
        cell(
            "",
            &format!("{}matmul(x, w){}", "(".repeat(ok), ")".repeat(ok)),
        ),
    )
    .unwrap();
    for n in [MAX_NESTING, 1000, 100_000] {
        let deep = format!("{}matmul(x, w){}", "(".repeat(n), ")".repeat(n));
        refused("parentheses", cell("", &deep), "nested more than");
        let calls = format!("{}matmul(x, w){}", "tanh(".repeat(n), ")".repeat(n));
        refused("calls", cell("", &calls), "nested more than");
        let shape = format!("  param v: [{}hidden{}];", "(".repeat(n), ")".repeat(n));
        refused(
            "a shape",
            cell(&shape, "tanh(matmul(x, w))"),
            "nested more than",
        );
        let split = format!(
            "  let (a, b) = split(matmul(x, w), {}[2, 2]{});",
            "(".repeat(n),
            ")".repeat(n)
        );
        refused(
            "split widths",
            cell(&split, "concat(a, b)"),
            "nested more than",
        );
    }
}

#[test]
fn unary_minus_chains_are_bounded() {
    run(
        "a short chain",
        cell(
            "",
            &format!("{}matmul(x, w)", "- ".repeat(MAX_OPERATOR_RUN - 1)),
        ),
    )
    .unwrap();
    for n in [MAX_OPERATOR_RUN + 1, 5000, 200_000] {
        refused(
            "minus chain",
            cell("", &format!("{}matmul(x, w)", "-".repeat(n))),
            "operators in a row",
        );
        refused(
            "spaced chain",
            cell("", &format!("{}matmul(x, w)", "- ".repeat(n))),
            "operators in a row",
        );
        refused(
            "negations",
            cell("", &format!("{}matmul(x, w)", "!".repeat(n))),
            "operators in a row",
        );
    }
}

#[test]
fn long_sums_are_bounded() {
    // `h = tanh(matmul(x, w) + 0.5 + ...)`: names and numbers counted.
    let terms = |n: usize| format!("matmul(x, w){}", " + 0.5".repeat(n));
    // `h`, `matmul`, `x`, `w` and the numbers.
    run("a sum at the limit", cell("", &terms(MAX_TERMS - 4))).unwrap();
    for n in [MAX_TERMS, 5000, 150_000] {
        let cases = [
            ("a long sum", terms(n)),
            (
                "a long product",
                format!("matmul(x, w){}", " * h".repeat(n)),
            ),
            (
                "many arguments",
                format!("concat({})", vec!["x"; n].join(", ")),
            ),
        ];
        for (what, value) in cases {
            refused(what, cell("", &value), "names and numbers in one statement");
        }
    }
}

#[test]
fn long_literals_and_names_are_refused_at_once() {
    for n in [MAX_TOKEN_CHARS + 1, 100_000, 900_000] {
        let cases = [
            (
                "a long number",
                format!("matmul(x, w) + {}.5", "1".repeat(n)),
            ),
            (
                "a long integer",
                format!("matmul(x, w) * {}", "7".repeat(n)),
            ),
        ];
        for (what, value) in cases {
            refused(what, cell("", &value), "longer than 64 characters");
        }
        let name = "a".repeat(n);
        let err = run(
            "a long name",
            cell(&format!("  let {name} = matmul(x, w);"), &name),
        )
        .unwrap_err();
        assert!(err.contains("`aaaaaaaaaaaaaaaa...`"), "{err}");
    }
}

#[test]
fn numbers_beyond_f32_are_refused() {
    for n in ["1e39", "1e308", "3.5e38", "1e400"] {
        refused(n, cell("", &format!("matmul(x, w) * {n}")), "out of range");
    }
    let init = "  param b: [hidden] = 1e39;";
    refused(
        "an initial value",
        cell(init, "matmul(x, w) + b"),
        "out of range",
    );
    run("the largest f32", cell("", "matmul(x, w) * 3.4e38")).unwrap();
}

#[test]
fn names_are_declared_once() {
    refused(
        "a parameter twice",
        cell("  param w: [input, hidden];", "tanh(matmul(x, w))"),
        "declared twice",
    );
    refused(
        "a state as a parameter",
        cell("  param h: [hidden];", "tanh(matmul(x, w))"),
        "declared twice",
    );
    let sizes = "#[sizes(input = 3, hidden = 4)]\ncell c { size input, hidden, input; input x: [input]; state h: [hidden]; param w: [input, hidden]; h = matmul(x, w); }";
    refused("a size twice", sizes.to_string(), "declared twice");
    refused(
        "a let tuple",
        cell("  let (a, a) = split(matmul(x, w));", "concat(a, a)"),
        "declared twice",
    );
}

#[test]
fn let_chains_are_bounded_in_depth() {
    let chain = |n: usize| {
        let mut lets = String::from("  let v0 = matmul(x, w);\n");
        for i in 1..n {
            lets.push_str(&format!("  let v{i} = tanh(v{});\n", i - 1));
        }
        (lets, format!("v{}", n - 1))
    };
    let (lets, last) = chain(MAX_DEPTH - 2);
    run("a chain at the limit", cell(&lets, &last)).unwrap();
    let (lets, last) = chain(MAX_DEPTH + 1);
    refused("a deep chain", cell(&lets, &last), "operations deep");
    let (lets, last) = chain(MAX_STATEMENTS - 10);
    refused("a long chain", cell(&lets, &last), "operations deep");
    // Wide rather than deep: many short statements compile quickly.
    let mut wide = String::new();
    for i in 0..MAX_STATEMENTS - 10 {
        wide.push_str(&format!("  let v{i} = tanh(matmul(x, w));\n"));
    }
    run("many short statements", cell(&wide, "v0")).unwrap();
}

#[test]
fn one_megabyte_files_end_quickly() {
    let mb = 1 << 20;
    let mut statements = String::new();
    while statements.len() < mb {
        statements.push_str("  let a = matmul(x, w);\n");
    }
    refused(
        "a million bytes of statements",
        cell(&statements, "a"),
        "statements in one cell",
    );
    let blank = " ".repeat(mb);
    run("a megabyte of spaces", cell(&blank, "matmul(x, w)")).unwrap();
    let comment = format!("  // {}\n", "x".repeat(mb));
    run("a megabyte comment", cell(&comment, "matmul(x, w)")).unwrap();
    let braces = "{".repeat(mb / 2) + &"}".repeat(mb / 2);
    let err = run("a megabyte of braces", braces).unwrap_err();
    assert!(err.contains("nested more than"), "{err}");
    let n = mb / 14;
    let mixed = format!("{}x{}", "tanh(- 1e3 * ".repeat(n), ")".repeat(n));
    let err = run("a megabyte of mixed tokens", cell("", &mixed)).unwrap_err();
    assert!(err.contains("nested more than"), "{err}");
}

/// Random token soups, generated from a seed: never a panic, never slow.
#[test]
fn random_token_soups_end_with_a_result_or_one_line() {
    let pieces = [
        "(", ")", "[", "]", "{", "}", "x", "h", "w", "matmul", "tanh", "split", "concat", "+", "-",
        "*", ",", ";", "=", "let", "1.0", "1e39", "state", "param", "size", ":", "-", "(", "(",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..40 {
        let mut body = String::new();
        let len = 10 + (round * 997) % 20_000;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            body.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            body.push(' ');
        }
        if let Err(e) = CellDef::parse_str(&cell(&body, "h")) {
            assert_eq!(e.to_string().lines().count(), 1);
        }
        // Lexing may already fail (unbalanced groups); when it lexes, both
        // paths run within the bounds.
        if cell(&body, "h").parse::<proc_macro2::TokenStream>().is_ok() {
            let _ = run(&format!("soup {round}"), cell(&body, "h"));
        }
    }
}

#[test]
fn matrix_values_are_bounded_in_size() {
    // 8000 · 8000 floats per row: each size is allowed, their product is not.
    refused(
        "a matrix state",
        cell(
            "  state s: [2000 * hidden, 2000 * hidden];",
            "tanh(matmul(x, w))",
        ),
        "64000000 floats per row with these sizes; at most 16777216",
    );
    refused(
        "an outer product",
        cell(
            "  param v: [input, 4096 * hidden];\n  let a = matmul(x, v);",
            "matmul(a, outer(a, a))",
        ),
        "`outer` is [4096 * hidden, 4096 * hidden] = 268435456 floats per row",
    );
    run(
        "a matrix state and its products",
        cell(
            "  state s: [hidden, hidden];\n  let a = tanh(matmul(x, w));\n  let t = s * 0.5 + outer(a, a);\n  s = t;",
            "matmul(a, t) + matmul(t, a)",
        ),
    )
    .unwrap();
}
