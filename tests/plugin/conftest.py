from acceptance import needs_docker, project

__all__ = ["needs_docker", "project"]
