"""What executes runs besides the `lane` process itself: Temporal workers (`engine: temporal`)."""
