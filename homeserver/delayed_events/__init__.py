"""MSC4140 delayed events: ``rules`` (pure) and ``scheduler`` (the timer and actions)."""
