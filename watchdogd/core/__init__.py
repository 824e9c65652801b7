"""The pure decision core: windows, gates and the per-target state machine.

Nothing in this package does I/O or reads a clock. Every function that needs the time takes
``now`` (seconds on a monotonic-style clock) as an argument, so the daemon, the tests and the
decision simulation all drive it the same way.
"""
