"""The legacy Django project: sync views, the ORM on SQLite, the admin."""
