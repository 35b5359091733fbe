"""A legacy Django project migrating to ASGI with bridge, the strangler-fig way."""
