"""Signal sources: I/O in, samples out. Each turns one kind of outside observation into calls on
a :class:`~watchdogd.sources.base.SampleSink`."""
