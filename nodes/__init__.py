"""ComfyUI node classes and the tensor<->image work; ComfyUI itself is imported lazily.

The class names are the identity saved in every workflow: never rename them.
"""

from .edit import RunComfyNanoBanana2Edit
from .text_to_image import RunComfyNanoBanana2TextToImage

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "RunComfyNanoBanana2TextToImage": RunComfyNanoBanana2TextToImage,
    "RunComfyNanoBanana2Edit": RunComfyNanoBanana2Edit,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "RunComfyNanoBanana2TextToImage": "Nano Banana 2 Text to Image (RunComfy)",
    "RunComfyNanoBanana2Edit": "Nano Banana 2 Edit (RunComfy)",
}
