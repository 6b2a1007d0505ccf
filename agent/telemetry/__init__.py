"""Device telemetry recorded with every result: temperatures, CPU frequency and governor, throttling
(Raspberry Pi ``vcgencmd get_throttled``, x86 thermal-throttle counters, thermal trip points) and Jetson
power mode. A throttled device measures a different machine, so a throttled window is flagged.

Every reader follows ``EDGEBENCH_SYSFS_ROOT`` / ``EDGEBENCH_PROC_ROOT`` (see edgebench.agent.power.paths).
"""
