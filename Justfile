# Everyday recipes. The README's two commands are plain cargo; these are shortcuts.

# Run every test (the README's test command).
test:
    cargo test --workspace

# Formatting, lints and tests, as CI runs them.
ci:
    bash .ci/run

# The log benchmark: log vs raw disk, appends, reads and restarts.
bench-log:
    cargo run --release -p cairn-runtime --bin cairn-bench-log

# The model-based test of the log with more cases (default 256).
model cases="4096":
    PROPTEST_CASES={{cases}} cargo test --release --test log_model

# Review pending insta snapshots of protocol traces.
review:
    cargo insta review

# Format everything.
fmt:
    cargo fmt --all
