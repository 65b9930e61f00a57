"""The bottom layer: errors, class-attribute registries, atomic I/O, caches, seeding, the network
check, progress and the execution environment (device, threads, memory). Imports nothing of xbench."""
