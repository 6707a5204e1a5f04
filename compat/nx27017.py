"""nx-27017's private parts that this project uses, written for nx-27017 0.8.1. Why each is needed:

- accept_old_drivers: Omniboard's MongoDB driver (3.x) refuses servers whose minWireVersion is above what it speaks;
  nx-27017 reports 17 but serves the older protocol fine.
- serve_with_handler: nx-27017 builds its request handler from a module global, with no way to choose another.
- encode_replies_with: nx-27017 copies every reply in Python to convert neosqlite's types before encoding it
  (~0.8 s for a listing of 10,000 runs), through two module globals.
- serve_forever_with: nx-27017's server loop (a module global) listens on TCP only and tells no one when it is ready.
- run_server: nx-27017's command line reads its arguments from sys.argv only.
- handle_client: nx-27017's connection handler, which serve_forever_with's server calls for each client, is a
  function of an internal module.
- gridfs_adapter: what nx-27017 answers for a GridFS collection comes from an internal module.
- Handler: the private methods of nx-27017's request handler that localdb.nx_adapter calls or extends.
"""
import sys

import nx_27017.daemon
import nx_27017.gridfs_adapter
import nx_27017.handler
import nx_27017.server
import nx_27017.wire_protocol
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.nx_27017 import main as nx_main

from compat import Package

NX_27017 = Package("nx-27017", ("0.8.1",), "compat/nx27017.py")


def _replace(module, name, value):
    NX_27017.target(module, name)
    setattr(module, name, value)


def accept_old_drivers():
    """Report minWireVersion 0, in this process."""
    _replace(nx_27017.wire_protocol, "MIN_WIRE_VERSION", 0)
    _replace(nx_27017.handler, "MIN_WIRE_VERSION", 0)


def serve_with_handler(handler_class):
    """Make nx-27017's server answer requests with `handler_class` (a subclass of Handler), in this process."""
    for name in Handler.PRIVATE_METHODS:
        NX_27017.target(NeoSQLiteHandler, name)
    _replace(nx_27017.daemon, "NeoSQLiteHandler", handler_class)


def encode_replies_with(encode, before_encode):
    """Make nx-27017 encode each reply document with `encode` (to BSON bytes), after `before_encode` (a document to a
    document) in place of its own copying conversion, in this process."""
    _replace(nx_27017.wire_protocol, "encode", encode)
    _replace(nx_27017.wire_protocol, "_convert_objectids", before_encode)


def serve_forever_with(serve_forever):
    """Make nx-27017 serve through `serve_forever(host, port, handler, use_threading=False)`, in this process."""
    _replace(nx_27017.daemon, "run_server_threaded", serve_forever)


def run_server(arguments):
    """nx-27017's command line with `arguments` (without the program's name), until it stops."""
    saved, sys.argv = sys.argv, ["nx-27017", *arguments]
    try:
        nx_main()
    finally:
        sys.argv = saved


def handle_client(reader, writer, handler):
    """Serve one client's requests from the asyncio streams `reader` and `writer` with `handler`, until it goes."""
    return NX_27017.target(nx_27017.server, "handle_client")(reader, writer, handler)


def gridfs_adapter(connection, name):
    """nx-27017's adapter of the GridFS collection `name` (e.g. fs.files) of an sqlite3 `connection`, whose
    handle_find(filter) gives its documents; None when the collection is no GridFS collection."""
    adapter, _ = NX_27017.target(nx_27017.gridfs_adapter, "create_gridfs_adapter")(connection, name)
    return adapter


class Handler(NeoSQLiteHandler):
    """nx-27017's request handler with the private methods that a subclass needs under public names."""
    PRIVATE_METHODS = ("_open_db_conn", "_lock_for", "_is_gridfs_collection", "_split_first_batch",
                       "_first_batch_size")

    def _open_db_conn(self, db_name):
        connection = super()._open_db_conn(db_name)
        self.opened(connection)
        return connection

    def opened(self, connection):
        """Called with each database connection that nx-27017 opens (a neosqlite Connection)."""

    def lock_for(self, db_name):
        """The lock that nx-27017 holds while it works on database `db_name`."""
        return self._lock_for(db_name)

    def is_gridfs_collection(self, name):
        return self._is_gridfs_collection(name)

    def first_batch_size(self, command):
        """How many documents the first batch of a find or aggregate `command` holds."""
        return self._first_batch_size(command)

    def split_first_batch(self, docs, batch_size, namespace, db_name, owner=None):
        """(the first batch of `docs`, the id of a cursor that serves the rest, 0 when there is none)."""
        return self._split_first_batch(docs, batch_size, namespace, db_name, owner=owner)
