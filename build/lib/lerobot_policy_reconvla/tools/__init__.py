"""Command-line tools around the policy: the offline demo, reconstruction pictures, the shipped presets."""
