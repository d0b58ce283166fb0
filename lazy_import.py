"""Modules loaded on first use, so that `--help` and flag errors answer before Keras loads.

Importing Keras imports its backend (TensorFlow takes 4-20 s on a 2-core machine), and Python runs a
script's imports before its `main` reads the command line. A module that names Keras at the top for
code that runs later binds it with `keras = lazy_import("keras")` instead: the first attribute read
imports backend_env (which must precede Keras) and then the module. Class bases and decorators are
evaluated at import, so modules that subclass Keras classes import Keras normally and are themselves
imported after the flags are read.
"""
import importlib


class lazy_import:  # noqa: N801  (used like the `import` statement it stands in for)
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attribute):
        import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self):
        return f"<lazy_import {self._name!r}>"
