"""ConFu's model, objectives, training loop, caption encoder and evaluation (mcrlib.confu)."""
import pytest
import torch

from mcrlib.confu.evaluate import (dot_scores, linear_probe, retrieval_at_k, two_to_one_query, two_to_one_scores,
                                   zero_shot_accuracy)
from mcrlib.confu.model import ConFuModel, MLPEncoder
from mcrlib.confu.text_encoder import VOCABULARY, CaptionEncoder, caption, caption_tokens, tokenize
from mcrlib.confu.train import embed, fit
from mcrlib.losses.higher_order import confu_loss, gram_loss, gram_volume, info_nce, multilinear_inner_product, symile_loss

NAMES = ("x1", "x2", "x3")


def make_model(objective="confu", lam=0.5, *, in_dim=6, seed=0, dropout=0.1):
    torch.manual_seed(seed)
    encoders = {m: MLPEncoder(in_dim=in_dim, hidden_dim=16, out_dim=12) for m in NAMES}
    return ConFuModel(encoders=encoders, embed_dim=8, fusion_hidden=20, dropout=dropout, objective=objective, lam=lam)


def batch(n=10, in_dim=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, in_dim, generator=gen) for m in NAMES}


def test_embeddings_have_the_shared_width_and_unit_norm():
    out = make_model()(batch())
    assert set(out["z"]) == set(NAMES) and set(out["fused"]) == {("x1", "x2"), ("x1", "x3"), ("x2", "x3")}
    for v in [*out["z"].values(), *out["fused"].values()]:
        assert v.shape == (10, 8)
        torch.testing.assert_close(v.norm(dim=1), torch.ones(10))
    for objective in ("symile", "gram"):
        assert make_model(objective)(batch())["fused"] == {} and len(make_model(objective).fusion) == 0


def test_fusion_mlp_is_two_layers_on_the_concatenated_encodings():
    model = make_model()
    mlp = model.fusion["x1+x2"].net
    assert [type(layer).__name__ for layer in mlp] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert mlp[0].in_features == 24 and mlp[0].out_features == 20 and mlp[2].p == 0.1 and mlp[3].out_features == 8


@pytest.mark.parametrize("lam", [0.5, 0.0, 1.0])
def test_confu_objective_is_the_higher_order_loss_on_the_model_outputs(lam):
    model = make_model(lam=lam).eval()
    out = model(batch())
    z, f = out["z"], out["fused"]
    torch.testing.assert_close(model.loss(out), confu_loss(z, f, lam=lam, tau=0.07))
    # written out: the three fused pairs against the remaining modality, the three pairs, / 6
    fused = info_nce(f["x1", "x2"], z["x3"]) + info_nce(f["x1", "x3"], z["x2"]) + info_nce(f["x2", "x3"], z["x1"])
    pairs = info_nce(z["x1"], z["x2"]) + info_nce(z["x1"], z["x3"]) + info_nce(z["x2"], z["x3"])
    torch.testing.assert_close(model.loss(out), (lam * fused + (1 - lam) * pairs) / 6)


def test_symile_objective_is_the_higher_order_symile_loss():
    model = make_model("symile").eval()
    out = model(batch())
    torch.testing.assert_close(model.loss(out), symile_loss([out["z"][m] for m in NAMES], tau=0.07))


def test_gram_objective_anchors_the_last_modality():
    model = make_model("gram").eval()
    out = model(batch())
    assert model.anchor == "x3"
    torch.testing.assert_close(model.loss(out), gram_loss(out["z"]["x3"], [out["z"]["x1"], out["z"]["x2"]], tau=0.07))


def test_lambda_zero_gives_the_fusion_mlps_no_gradient():
    for lam, fusion_moves in ((0.0, False), (0.5, True)):
        model = make_model(lam=lam)
        model.loss(model(batch())).backward()
        fusion = [p.grad.abs().sum().item() for p in model.fusion.parameters()]
        encoders = [p.grad.abs().sum().item() for p in model.encoders.parameters()]
        assert all(g == 0 for g in fusion) != fusion_moves
        assert all(g > 0 for g in encoders)


def test_two_to_one_scores_are_their_definitions():
    emb = make_model().eval()(batch())
    z, gallery = emb["z"], emb["z"]["x3"][:7]
    score = lambda scorer, **kw: two_to_one_scores(emb, ("x1", "x2"), gallery, scorer, **kw)
    mip = multilinear_inner_product(z["x1"][:, None], z["x2"][:, None], gallery[None])
    torch.testing.assert_close(score("product"), mip)
    torch.testing.assert_close(score("sum"), z["x1"] @ gallery.T + z["x2"] @ gallery.T)
    torch.testing.assert_close(score("fused"), emb["fused"]["x1", "x2"] @ gallery.T)
    # GRAM: minus the volume of (gallery item g, x1 at n, x2 at n), query by query; chunking changes nothing
    volumes = torch.tensor([[gram_volume(gallery[g:g + 1], z["x1"][n:n + 1], z["x2"][n:n + 1]).item()
                             for g in range(7)] for n in range(10)])
    torch.testing.assert_close(score("volume"), -volumes)
    torch.testing.assert_close(score("volume", chunk=3), score("volume"))
    assert two_to_one_query(emb, ("x1", "x2"), "fused") is emb["fused"]["x1", "x2"]
    with pytest.raises(ValueError, match="use scorer 'sum' or 'product'"):
        two_to_one_query(make_model("symile")(batch()), ("x1", "x2"), "fused")
    with pytest.raises(ValueError, match="use two_to_one_scores"):
        two_to_one_query(emb, ("x1", "x2"), "volume")


def test_zero_shot_accuracy_on_a_hand_made_case():
    classes = torch.eye(3)
    query = torch.tensor([[1.0, 0.2, 0.0],    # best class 0, second 1
                          [0.0, 0.3, 1.0],    # best 2, second 1
                          [0.9, 1.0, 0.0],    # best 1, second 0
                          [0.1, 0.0, 0.5]])   # best 2, second 0
    labels = torch.tensor([0, 1, 1, 0])
    scores = dot_scores(query, classes)
    assert zero_shot_accuracy(scores, labels) == 0.5            # rows 0 and 2
    assert zero_shot_accuracy(scores, labels, k=2) == 1.0
    with pytest.raises(ValueError, match="one class embedding per label"):
        zero_shot_accuracy(scores, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="embeddings of one space"):
        dot_scores(query, torch.eye(2))


def test_category_level_retrieval_on_a_hand_made_case():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    gallery_labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.1], [1.0, 0.0]])
    recall = retrieval_at_k(dot_scores(query, gallery), torch.tensor([1, 0]), gallery_labels, ks=(1, 2))
    # query 0 ranks items 0, 2, 1: class 1 first at rank 2; query 1 ranks item 0 (class 0) first
    assert recall == {1: 0.5, 2: 1.0}
    with pytest.raises(ValueError, match="one row per query label"):
        retrieval_at_k(dot_scores(query, gallery), torch.tensor([1]), gallery_labels)


def test_linear_probe_reads_a_linearly_separable_label():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    assert linear_probe(x[:100], y[:100], x[100:], y[100:]) > 0.9


def test_captions_tokens_and_the_caption_encoder():
    assert caption(3) == "an image of a three"
    tokens = caption_tokens(torch.tensor([0, 7]))
    assert tokens.shape == (2, 5) and tokens[0, -1] == VOCABULARY.index("zero") and tokens[1, -1] == VOCABULARY.index("seven")
    assert tokenize(["an owl"]).tolist() == [[VOCABULARY.index("an"), VOCABULARY.index("<unk>")]]
    torch.manual_seed(0)
    encoder = CaptionEncoder(out_dim=12)
    padded = tokenize(["a three", "an image of a three"])
    alone = tokenize(["a three"])
    torch.testing.assert_close(encoder(padded)[0], encoder(alone)[0])   # padding is not read
    assert encoder(padded).shape == (2, 12)
    with pytest.raises(ValueError, match="expected an integer in 0..9"):
        caption(10)


def test_bad_constructions_say_what_to_pass():
    encoders = {m: MLPEncoder(in_dim=4) for m in ("a", "b")}
    with pytest.raises(ValueError, match="ConFu aligns three or more"):
        ConFuModel(encoders=encoders)
    with pytest.raises(ValueError, match="expected one of"):
        make_model("clip")
    with pytest.raises(ValueError, match=r"expected a weight in \[0, 1\]"):
        make_model(lam=1.5)
    with pytest.raises(KeyError, match="lacks modalities"):
        make_model()({"x1": torch.zeros(2, 6)})
    with pytest.raises(ValueError, match="a contrastive batch needs negatives"):
        fit(make_model(), batch(), epochs=1, batch_size=1)


def test_training_on_a_tiny_xor_lowers_the_confu_loss_and_is_deterministic():
    from mcrlib.data.synthetic_xor import SyntheticXorConfig, load
    data = load(SyntheticXorConfig(n_classes=3, latent_dim=4, input_dim=16, x3_fraction=1.0, x3_scale=3.0,
                                   n_train=256, n_val=2, n_test=2)).splits["train"]
    histories = []
    for _ in range(2):
        model = make_model(in_dim=16, seed=3)
        histories.append(fit(model, data, epochs=8, batch_size=64, lr=3e-3, seed=5, progress=False))
    assert histories[0] == histories[1]
    assert histories[0][-1] < histories[0][0] - 0.05
    emb = embed(model, data, batch_size=100)                     # batched embedding = one pass
    torch.testing.assert_close(emb["fused"]["x1", "x2"], model.eval()({m: data[m] for m in NAMES})["fused"]["x1", "x2"])
