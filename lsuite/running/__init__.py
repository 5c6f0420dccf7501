"""Running an implementation: the runner (build, call, output and mutation checks,
backward), the worker process each implementation runs in, and the rank groups of the
vocab-parallel losses. Imports the layers below; never judges."""
