"""System snapshots and the historian.

Layers, each usable alone (the resident agent and `batchflow collect` put
them together through `collector.Collector`):

  calendar   days and times of day in one time zone (injectable: tests use a fake one)
  codec      one closed day of one series as one compressed row (exact round trip)
  store      the historian: sqlite (WAL), an in-memory buffer flushed on an interval,
             closed days compressed, queries that read all three transparently
  snapshot   what psutil says of the system and of processes, as historian points and rows
  export     a day as dygraph-ready CSV files; rotation (reported, deleted, tar.gz, disk cap)
  triggers   periodic triggers (interval, reference time, excluded ranges) and the
             TCP frame feed (terminator, maximum size, keepalive, reconnect)
  scheduler  tasks run on triggers, at most N at once, stopped past twice their period
  config     the [history] section of the configuration, validated
  plot       a series as a PNG (matplotlib, Agg)
"""
