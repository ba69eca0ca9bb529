"""One leaderboard across protocols: every embedder on every set whose data is present, in the field's columns.

    python -m bench.leaderboard --embedders dlib-resnet,lbp
    python -m bench.leaderboard --embedders dlib-resnet,lbp,recognizer:runs/rec/checkpoint.pt --fixtures

Columns, in the field's order (what each is, `COLUMNS`; where its data is looked for under the data root):
LFW (`protocols.lfw`, View 2 10-fold accuracy, the project's convention, no flip), CFP-FP, AgeDB-30, CALFW,
CPLFW (`protocols.verification` on insightface's .bin files, accuracy in insightface's convention with flip),
IJB-B and IJB-C (`protocols.ijbc`, 1:1 TAR@FAR=1e-4, media then template pooling, no flip) and IJB-A
(`protocols.ijba`, 1:1 TAR@FAR=1e-3, mean over splits). A set whose files are absent is marked missing with
the file or folder looked for. With --fixtures, the LFW-made format fixtures (`protocols.bin_fixture`,
`protocols.ijbc_fixture`, `protocols.ijba_fixture`, built once into the cache folder) are evaluated too and
shown in a separate table whose columns say FIXTURE: they exercise the code paths and are never the real sets.

Each (embedder, set) result is written where the protocol's own command writes it (results/lfw/...,
results/verification/<embedder>/<set>, results/<ijbb|ijbc>/<embedder>, results/ijba/<embedder>; fixtures under
<out>/fixtures/) and reused when its metrics.json holds the same evaluation (embedder key, the data's content
digest, options): a rerun with one more embedder evaluates that embedder only (--force recomputes). Embeddings
are cached as for every protocol (`protocols.embedding`).

--embedders is a comma-separated list of names as `--embedder` takes them (`lbp`, `onnx:PATH?opts`,
`timm:NAME`), and `NAME:WEIGHTS` for a registered embedder that takes a weights file
(`recognizer:runs/rec`, `dlib-resnet:/models/dlib.dat`).
"""
