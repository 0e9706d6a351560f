from setuptools import find_packages, setup

setup(
    name="batchflow",
    version="0.1.0",
    description="Record what a batch job does, with eBPF, as an RDF (PROV-O) graph in Turtle",
    # Every package under agent/, found rather than listed.
    packages=find_packages(include=["agent", "agent.*"]),
    # agent/bpf is a link to the top-level bpf/: the kernel side's sources
    # travel inside the package, where agent/abi.py and the loader read them.
    # serve/static: the web page (plain JavaScript, no library: nothing to vendor).
    package_data={"agent": ["ontology/*.ttl", "bpf/*.h", "bpf/*.c", "serve/static/*"],
                  "agent.daemon": ["batchflow-agent.service"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15"],
    cffi_modules=["ext/_build.py:ffibuilder"],
    install_requires=[
        "cffi>=1.15",
        "rdflib>=7.0",
        "psutil>=5.9",
        "msgpack>=1.0",
        "pyoxigraph>=0.4",      # batchflow query: embedded SPARQL store
        "pyparsing>=3.1",       # rdflib's SPARQL needs it; Debian's older one shadows it
        "matplotlib>=3.6",      # batchflow history plot (Agg backend, no display needed)
        "numpy>=1.21",          # the historian's compressed rows (XOR + byte shuffle in C)
        "requests>=2.28",       # batchflow push / query --store: HTTP to SPARQL stores
        "starlette>=0.37",      # batchflow serve: the ASGI application (routes, SSE, static files)
        "uvicorn>=0.29",        # ... and its HTTP server
        "jsonschema>=4.17",     # batchflow rules: the configuration's schema
        'tomli>=1.1; python_version < "3.11"',   # TOML before tomllib
    ],
    entry_points={
        "console_scripts": ["batchflow=agent.cli.main:script"],
        # Resident-agent plug-ins (agent/daemon/tasks.py): setup(agent) adds tasks.
        "batchflow.agent": ["history = agent.history.resident:setup",
                            "store-push = agent.fleet.agent_push:setup",
                            "rules = agent.rules.resident:setup"],
        # Rules, found by name (agent/rules/config.py); plugins add theirs here.
        "batchflow.rules": [
            "missing-dependency = agent.rules.builtin:MissingDependency",
            "dataflow = agent.rules.builtin:Dataflow",
            "failure-chain = agent.rules.builtin:FailureChain",
            "fork-storm = agent.rules.builtin:ForkStorm",
            "exec-loop = agent.rules.builtin:ExecLoop",
            "collision = agent.rules.builtin:Collision",
            "hot-spot = agent.rules.builtin:HotSpot",
        ],
    },
)
