//! Scenario tests (below).
