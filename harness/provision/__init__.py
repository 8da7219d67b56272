"""Host set-up (root only): packages, daemons, emulators, the offline registry mirror and
its seeded base images. Nothing here is imported by the pytest plugin."""
