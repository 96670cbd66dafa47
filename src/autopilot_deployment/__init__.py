"""This repository's own deployment: the definitions `dg` loads from the top-level `defs/` folder.

Not part of the `dagster-autopilot` wheel. A project that uses the library has a package like this
one of its own (`dg scaffold project` makes it)."""
