"""One test per attack on an entry point: each performs the attack against the real stack or view
and asserts the refusal (docs/operations.md, "Security")."""
