"""RunComfy Nano Banana 2 nodes for ComfyUI.

ComfyUI imports this folder as a package under whatever name it was cloned as,
so everything inside uses relative imports only.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .routes import register_with_comfyui

register_with_comfyui()  # the editor extension's price, account and token routes

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
