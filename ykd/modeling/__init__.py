from . import backbone  # noqa: F401  (registration)
