"""The dropkit conformance suite, shipped with the package.

Run it against any installed backend::

    pytest --pyargs dropkit.testing --dropkit-backend NAME

Without ``--dropkit-backend`` it runs on every installed backend, skipping
unavailable ones with the reason. The pytest plugin (``dropkit.testing.plugin``,
registered through the ``pytest11`` entry point, inert in other projects) adds
the option and the ``dropkit_backend`` fixtures; :mod:`dropkit.testing.strategies` and
:mod:`dropkit.testing.stats` are reusable in an embedding library's own tests.

The properties draw the same examples on every machine (derandomized, no
example database: :mod:`dropkit.testing.profiles`), whatever Hypothesis
profile the surrounding project loads; ``--hypothesis-profile=dropkit-deep``
searches ten times as many random examples.

This module imports nothing heavy, so the plugin costs nothing to load.
"""
