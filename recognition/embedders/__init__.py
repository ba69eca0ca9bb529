"""Face embedders behind one registry and one factory (timm style).

    from recognition.embedders import get_embedder, list_embedders
    embedder = get_embedder("lbp")
    features = embedder(batch_of(embedder.transform(image) for image in images))

Every embedder takes *loose face crops in LFW geometry* (the face box centred, the crop 2.2 times the
box, as LFW's 250x250 images are) and its `transform` turns one such PIL image into its input tensor.
"""
from recognition.embedders.registry import Embedder, get_embedder, list_embedders, register_embedder
from recognition.embedders import baselines, dlib_resnet, facenet, nn4  # noqa: F401  (register their embedders)
from recognition import checkpoint_embedder  # noqa: F401  (registers 'recognizer': a recognition.train checkpoint)

__all__ = ["Embedder", "get_embedder", "list_embedders", "register_embedder"]
