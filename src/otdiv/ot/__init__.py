"""otdiv's internal optimal-transport core (not public API; docs/architecture.md, "The OT core").

The public functions in :mod:`otdiv.metrics` validate their arguments, state a problem and
hand it to a solver here; every solver answers with one :class:`~otdiv.ot.results.TransportResult`.
"""
