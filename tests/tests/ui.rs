//! Compile-time behaviour of `#[distributed_lock]`: what must compile (and run), and what
//! must fail with the message in the reviewed `.stderr` file beside it.
//! `TRYBUILD=overwrite cargo test -p lock-tests --test ui` rewrites the `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
