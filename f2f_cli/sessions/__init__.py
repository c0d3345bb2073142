"""Fridge sessions: the model, the store protocol and its SQL/Redis/dual implementations."""
