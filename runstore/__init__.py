"""The recorded runs: where they are kept (settings, the MongoDB connection, the file store's layout), reading them
back and deleting them. The lowest layer: it imports nothing else of this project."""
