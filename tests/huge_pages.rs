//! Transparent huge pages: off for the process once it manages them, on while a holder lives
//! (what an external sort holds), as the kernel reports them (`THP_enabled` in /proc/self/status).

use dfpipe::memory::allocator::{HugePages, small_pages};

/// The kernel's `THP_enabled` for this process.
fn huge_pages_enabled() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("THP_enabled in /proc/self/status");
    match line.split_whitespace().nth(1) {
        Some("1") => true,
        Some("0") => false,
        other => panic!("THP_enabled is {other:?}"),
    }
}

#[test]
fn huge_pages_are_allowed_only_while_a_holder_lives_and_holders_nest() {
    // No other test of this binary holds huge pages (the external sort runs in the binaries the
    // other tests start).
    small_pages();
    assert!(!huge_pages_enabled());
    let first = HugePages::hold();
    assert!(huge_pages_enabled());
    let second = HugePages::hold();
    drop(first);
    assert!(huge_pages_enabled(), "a holder is left");
    drop(second);
    assert!(!huge_pages_enabled());
}
