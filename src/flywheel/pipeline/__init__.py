"""The flywheel pipeline: ingest → curate → split → icl → experiments → evaluate → report.

Plain library code, callable from a notebook or the CLI with no server, no database server and no GPU.
"""
