"""harness - test infrastructure for pgsluice: throwaway PostgreSQL clusters and the pooler under test.

Modules: cluster (primary + replica), pooler (pgsluice or PgBouncer with a generated config),
util (ports, processes). CLI: /usr/bin/python3 -m harness cluster up|down|status --dir D
"""
