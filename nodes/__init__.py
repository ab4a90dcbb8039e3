"""ComfyUI node classes and the tensor<->image work; ComfyUI itself is imported lazily."""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
