"""The four claims under test, each as setup -> runs -> numbers -> verdict.

One module per claim of the paper; the notebooks call them and add prose and figures. Every
module has ``setup(profile, seeds, ...)`` (the runs a profile asks for, validated),
``run(setup)`` (results through the store: trained once, loaded afterwards), ``numbers`` and a
``verdict`` computed from the runs against a stated criterion.
"""

from omnigrok.claims import axes, constraint, goldilocks, large_init

__all__ = ["axes", "constraint", "goldilocks", "large_init"]
