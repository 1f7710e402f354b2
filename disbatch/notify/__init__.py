"""Notifications about a run sent to a person outside it (mail); each is a `RunObserver` of the driver."""
