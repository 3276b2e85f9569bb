"""Shared plumbing with no knowledge of the policy: crash-safe writing, command-line flags, worker
processes."""
