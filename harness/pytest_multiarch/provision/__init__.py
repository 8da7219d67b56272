"""Host set-up (root only): packages, daemons, emulators, the offline registry mirror and
its seeded base images, and second engines on request. Nothing here is imported by the pytest
plugin.

Every piece of set-up is a :class:`~pytest_multiarch.provision.steps.Step` whose ``check()`` says
what is there and what a fix would run, and whose ``apply()`` runs that fix: planning (non-root,
``--dry-run``) and acting (root) go through the same checks.
"""
