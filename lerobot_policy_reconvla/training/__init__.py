"""Training options LeRobot's trainer gains from the plugin: the 8-bit AdamW optimizer type."""
