"""Three kinds of wrong result that no error shows, each tested where it can happen rather than in one
spelling of it: captions paired with the wrong images on their way from the samples to the loss, TC-JEPA's
two regulariser weights trading places, and a probe's regularisation chosen on the test split."""

from __future__ import annotations

import torch

from jepakit.eval import linear_probe
from jepakit.train.pipeline import EpochOrder, micro_batches

from conftest import tiny_config

WORDS = ["red", "green", "blue", "black", "white", "round", "square", "small", "large", "left", "right", "top"]


class Tagged(torch.utils.data.Dataset):
    """Image i is the flat grey i / n, its one caption names word i: a row's caption tells its image."""

    def __init__(self, n: int, side: int) -> None:
        self.n, self.side = n, side

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full((3, self.side, self.side), i / self.n), "captions": [f"a {WORDS[i]} scene"]}

    def captions(self, i: int) -> list[str]:
        return self[i]["captions"]


def tc_jepa(**overrides):
    return tiny_config("tc-jepa", masker={"min_keep": 4}, data={"size": 12}, **overrides)


def test_each_batch_row_carries_its_own_images_captions_through_the_pipeline():
    """Shuffled epochs, threads and micro-batches: the caption tokens of every row are those of the image
    in that row (a constant grey tells which sample it is, through any crop)."""
    cfg = tc_jepa()
    model = cfg.build()
    data = Tagged(len(WORDS), cfg.method.image_size)
    model.prepare(data)
    alone = {i: model.tokenizer([data[i]["captions"]]).ids[0] for i in range(len(data))}
    batches = micro_batches(
        model.make_batch,
        data,
        EpochOrder(len(data), 6, seed=3),
        seed=3,
        accum_steps=2,
        start=0,
        stop=4,
        num_workers=2,
        prefetch=2,
    )
    seen = set()
    with batches:
        for _, _, batch in batches:
            for row in range(batch["images"].shape[0]):
                i = round(float(batch["images"][row].mean()) * len(data))
                assert torch.equal(batch["text"].ids[row], alone[i]), f"row {row} holds image {i}"
                seen.add(i)
    assert len(seen) == len(data)


def test_the_loss_of_a_batch_is_the_mean_of_its_images_alone():
    """With one caption each and masks of equal size, a batch's prediction loss is the mean of its
    images' losses computed one at a time, which pair correctly whatever the code does with rows: a caption
    read for another image of the batch (in the text encoder, the conditioner's rows, the repeats) breaks it."""
    cfg = tc_jepa(conditioner={"sparse_weight": 0.0, "consistency_weight": 0.0})
    torch.manual_seed(0)
    model = cfg.build().eval()
    data = Tagged(len(WORDS), cfg.method.image_size)
    model.prepare(data)
    b = 4
    images = torch.stack([data[i]["image"] for i in range(b)]) + 0.3 * torch.rand(b, 3, 32, 32)
    captions = [data[i]["captions"] for i in range(b)]
    masks = model.masker(b, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(images, masks, model.tokenizer(captions))["predict"]
        each = [
            model(images[i : i + 1], masks.take(torch.tensor([i])), model.tokenizer(captions[i : i + 1]))["predict"]
            for i in range(b)
        ]
        rolled = model(images, masks, model.tokenizer(captions[1:] + captions[:1]))["predict"]
    torch.testing.assert_close(whole, torch.stack(each).mean(), rtol=1e-5, atol=1e-6)
    assert not torch.isclose(rolled, whole, rtol=1e-5, atol=1e-6), "the test can see a mispairing"


def test_each_regulariser_is_weighted_by_its_own_lambda_or_beta():
    """The same weights (built from one seed) under (lambda, beta) = (0.1, 0.5) and (1, 1): the logged
    L_sparse part scales by lambda and L_consistency by beta, whichever way a swap would be written (in the
    config's wiring, the conditioner, the sum); with one conditioned layer L_consistency is 0 while L_sparse
    is not, so the two terms cannot trade names either."""
    data = Tagged(len(WORDS), 32)
    images = torch.rand(4, 3, 32, 32)
    captions = [data[i]["captions"] for i in range(4)]

    def parts(**conditioner):
        torch.manual_seed(0)
        model = tc_jepa(conditioner=conditioner).build()
        model.prepare(data)
        with torch.no_grad():
            return model(images, model.masker(4, torch.Generator().manual_seed(2)), model.tokenizer(captions))

    paper, unit = parts(sparse_weight=0.1, consistency_weight=0.5), parts(sparse_weight=1.0, consistency_weight=1.0)
    assert float(unit["sparse"]) > 1e-4 and float(unit["consistency"]) > 1e-4, "both terms alive"
    torch.testing.assert_close(paper["sparse"], 0.1 * unit["sparse"])
    torch.testing.assert_close(paper["consistency"], 0.5 * unit["consistency"])
    torch.testing.assert_close(paper["loss"], paper["predict"] + paper["sparse"] + paper["consistency"])
    one = parts(layers=(-1,), sparse_weight=1.0, consistency_weight=1.0)
    assert float(one["consistency"]) == 0.0 and float(one["sparse"]) > 1e-4


def test_the_linear_probe_chooses_its_l2_on_val_and_reports_the_test_accuracy_there():
    """Val, test and train disagree on the best L2 strength (test's labels follow another rule; train is fitted
    best by the weakest): the sweep's choice is the val argmax of the strengths solved alone, and its test
    accuracy is that strength's; a choice made on the test or the training split scores lower on val."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(12, generator=g)
    x = torch.randn(300, 12, generator=g)
    noisy = (x @ w + 1.5 * torch.randn(300, generator=g) > 0).long()
    train, val = (x[:60], noisy[:60]), (x[60:180], noisy[60:180])
    test = (x[180:], (x[180:, :6].sum(1) > 0).long())  # another rule
    l2s = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
    alone = {l2: linear_probe(train, val, test, l2s=(l2,)) for l2 in l2s}
    fitted = {l2: linear_probe(train, train, train, l2s=(l2,))["val_accuracy"] for l2 in l2s}
    best = max(a["val_accuracy"] for a in alone.values())
    by_test = next(l2 for l2 in l2s if alone[l2]["accuracy"] == max(a["accuracy"] for a in alone.values()))
    by_train = next(l2 for l2 in l2s if fitted[l2] == max(fitted.values()))
    assert alone[by_test]["val_accuracy"] < best and alone[by_train]["val_accuracy"] < best, "choices separated"
    swept = linear_probe(train, val, test, l2s=l2s)
    assert swept["val_accuracy"] == best and alone[swept["l2"]]["val_accuracy"] == best
    assert swept["accuracy"] == alone[swept["l2"]]["accuracy"]
