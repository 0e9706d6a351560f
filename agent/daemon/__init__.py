"""The resident agent: the kernel side loaded once, recordings served on a
Unix socket (protocol.py, documented in docs/agent.md), its configuration
(config.py), its recordings (recordings.py), the server (server.py), the
plug-in point for periodic tasks and per-recording consumers (tasks.py),
and the client side `record` and `status` use (client.py)."""
