"""Service adapters: the HTTP API and job workers. They load state, call the pipeline and save results."""
