"""Face embedders behind one registry and one factory (timm style).

    from recognition.embedders import get_embedder, list_embedders
    embedder = get_embedder("lbp")
    features = embedder(batch_of(embedder.transform(image) for image in images))

Every embedder takes *loose face crops in LFW geometry* (the face box centred, the crop 2.2 times the
box, as LFW's 250x250 images are) and its `transform` turns one such PIL image into its input tensor.

The trained recognizer ('recognizer', from `recognition.checkpoint_embedder`) sits a layer above and
registers itself through the `facebench.embedders` entry point (see `registry.load_plugins`).

Users bring their own networks by name, `onnx:PATH`, `torchscript:PATH` or `timm:NAME[:CHECKPOINT]`, and
insightface's or AdaFace's released weights as `iresnet:ARCH:PATH`, `mobilefacenet:PATH`, `adaface:ARCH:PATH`,
options after '?' (see `recognition.embedders.external`); `list_embedder_prefixes()` lists the forms.
"""
from recognition.embedders.registry import (Embedder, get_embedder, list_embedder_prefixes, list_embedders,
                                            register_embedder)
from recognition.embedders import baselines, dlib_resnet, facenet, facenet_keras, nn4, sface  # noqa: F401  (register their embedders)
from recognition.embedders import external, iresnet, mobilefacenet, adaface  # noqa: F401  (bring-your-own prefixes, listed in this order)

__all__ = ["Embedder", "get_embedder", "list_embedder_prefixes", "list_embedders", "register_embedder"]
