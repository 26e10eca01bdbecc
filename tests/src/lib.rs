//! End-to-end tests live in `tests/tests/`; scenario files in `tests/scenarios/`.
