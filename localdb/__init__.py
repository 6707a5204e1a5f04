"""`tracker db`: the embedded MongoDB-compatible server (nx-27017 on SQLite), for machines without MongoDB."""
