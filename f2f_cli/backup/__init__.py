"""The redis phase backup: a worker that drains the backup stream into SQL."""
