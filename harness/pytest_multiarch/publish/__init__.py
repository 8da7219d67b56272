"""Publishing exactly what was tested to a registry."""
