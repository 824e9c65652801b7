"""Per-target supervision: samples into windows, windows through gates, gates into decisions."""
