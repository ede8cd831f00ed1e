from .atomic import atomic_write, torch_save_atomic, write_json_atomic, write_text_atomic

__all__ = ["atomic_write", "torch_save_atomic", "write_json_atomic", "write_text_atomic"]
