from acceptance import project, skip_without_docker

__all__ = ["project", "skip_without_docker"]
