"""Face recognition: pretrained embedders, recognizer backbones, the dual-softmax trainer."""
