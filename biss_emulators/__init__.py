"""Development emulators for the systems the pipeline talks to (Ivoris, HubSpot).

These are dev tools, not pipeline logic: the pipeline never imports them. Tests, the
demo and the benchmarks run them in-process on a free loopback port.
"""
