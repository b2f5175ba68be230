"""The PostgreSQL backend of the store: psycopg 3, async, over a connection pool, for deployments
that share one database between processes or machines."""
