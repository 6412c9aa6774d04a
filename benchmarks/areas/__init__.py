"""The benchmark areas: `scripts/bench` with no area runs every module here (`--quick`: each at its smallest)."""
