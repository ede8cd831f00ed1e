from .atomic import atomic_write, torch_save_atomic, write_json_atomic, write_text_atomic
from .faults import NonFiniteLossError, check_finite_losses, check_output_writable
from .modules import unwrap

__all__ = [
    "NonFiniteLossError",
    "atomic_write",
    "check_finite_losses",
    "check_output_writable",
    "torch_save_atomic",
    "unwrap",
    "write_json_atomic",
    "write_text_atomic",
]
