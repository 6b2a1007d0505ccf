"""Power sources and energy measurement (``docs/energy.md``).

One module per source behind :class:`~edgebench.agent.power.base.PowerSource`; :mod:`.detect` picks one
(auto-detection or an explicit ``--power-source``), :mod:`.sampler` polls it on a background thread,
:mod:`.integrate` turns samples into joules and :mod:`.meter` turns a measured window into an
:class:`~edgebench.agent.results.schema.EnergyResult`. Vendor libraries (pynvml, jtop) are imported
lazily inside the sources that need them.
"""
