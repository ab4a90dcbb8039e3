"""ComfyUI node classes and the tensor<->image work; ComfyUI itself is imported lazily.

The class names are the identity saved in every workflow: never rename them.
"""

from .edit import RunComfyNanoBanana2Edit
from .result_by_request_id import RunComfyNanoBanana2ResultByRequestId
from .text_to_image import RunComfyNanoBanana2TextToImage

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "RunComfyNanoBanana2TextToImage": RunComfyNanoBanana2TextToImage,
    "RunComfyNanoBanana2Edit": RunComfyNanoBanana2Edit,
    "RunComfyNanoBanana2ResultByRequestId": RunComfyNanoBanana2ResultByRequestId,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "RunComfyNanoBanana2TextToImage": "Nano Banana 2 Text to Image (RunComfy)",
    "RunComfyNanoBanana2Edit": "Nano Banana 2 Edit (RunComfy)",
    "RunComfyNanoBanana2ResultByRequestId": "Nano Banana 2 Result by Request ID (RunComfy)",
}
