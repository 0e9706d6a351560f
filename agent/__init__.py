"""batchflow: record what a batch job really does, as an RDF graph."""
__version__ = "0.1.0"
