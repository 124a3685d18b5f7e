"""The runtime: values, VM, filter fast path, events, clocks, store, engine and simulation."""
