"""`batchflow serve`: a JSON/SSE server and a web page for finished and live recordings.

sources.py  where a run's graph comes from (a journal followed live, a Turtle file)
hub.py      the runs, the per-client bounded queues, the pump that reads sources
app.py      the Starlette application (routes, auth, errors, downloads)
runner.py   binding, the token file, dropping root, uvicorn
static/     the page (plain JavaScript, no library, nothing fetched at run time)
"""
